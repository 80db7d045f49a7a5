//! Splitting an import file into records without holding more than one record in memory:
//! NDJSON (one JSON value a line) or one or more JSON arrays (`[…]`, as Cotter's list pages
//! were saved, also several pages one after the other), each record with the line it starts on.

use std::io::BufRead;

/// One record's bytes, or why the file could not give one.
#[derive(Debug)]
pub enum Piece {
    /// A record (its bytes, not yet parsed).
    Record { line: u64, bytes: Vec<u8> },
    /// A record that cannot be read (too long); the reader went on after it.
    Bad {
        line: u64,
        code: &'static str,
        detail: String,
    },
    /// The file breaks its format here; nothing after this point can be read.
    Broken {
        line: u64,
        code: &'static str,
        detail: String,
    },
}

/// The two formats an import file can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/x-ndjson`: one JSON object a line; blank lines are skipped.
    Ndjson,
    /// `application/json`: a JSON array of objects, or several arrays one after another.
    JsonArray,
}

/// Reads records from a file of either format, each at most `max_bytes`.
pub struct Reader<R> {
    input: R,
    format: Format,
    max_bytes: usize,
    /// The line the reader is on (1-based).
    line: u64,
    state: State,
    /// Whether anything was read yet (a byte order mark is skipped first).
    started: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// JSON array: before an array (at the start, or after one ended).
    Outside,
    /// JSON array: inside an array, before an element or its end.
    BeforeElement,
    /// JSON array: after an element, before `,` or `]`.
    AfterElement,
    /// Nothing more can be read.
    Done,
}

impl<R: BufRead> Reader<R> {
    /// A reader of `input` in `format`.
    pub fn new(input: R, format: Format, max_bytes: usize) -> Self {
        Reader {
            input,
            format,
            max_bytes,
            line: 1,
            state: State::Outside,
            started: false,
        }
    }

    fn broken(&mut self, code: &'static str, detail: impl Into<String>) -> Option<Piece> {
        self.state = State::Done;
        Some(Piece::Broken {
            line: self.line,
            code,
            detail: detail.into(),
        })
    }

    /// The next byte without consuming it; `None` at the end of the input.
    fn peek(&mut self) -> std::io::Result<Option<u8>> {
        Ok(self.input.fill_buf()?.first().copied())
    }

    fn bump(&mut self) {
        self.input.consume(1);
    }

    /// Skips white space (counting lines); the first other byte, not consumed.
    fn skip_space(&mut self) -> std::io::Result<Option<u8>> {
        loop {
            match self.peek()? {
                Some(b'\n') => {
                    self.line += 1;
                    self.bump();
                }
                Some(b' ' | b'\t' | b'\r') => self.bump(),
                other => return Ok(other),
            }
        }
    }

    /// Skips a UTF-8 byte order mark at the start of the file (editors on Windows write one).
    fn skip_bom(&mut self) -> std::io::Result<()> {
        if self.started {
            return Ok(());
        }
        self.started = true;
        if self.input.fill_buf()?.starts_with(b"\xEF\xBB\xBF") {
            self.input.consume(3);
        }
        Ok(())
    }

    fn next_line(&mut self) -> std::io::Result<Option<Piece>> {
        loop {
            let line = self.line;
            let mut bytes = Vec::new();
            let mut too_long = false;
            let mut ended = false;
            loop {
                let buf = self.input.fill_buf()?;
                if buf.is_empty() {
                    ended = true;
                    break;
                }
                let (chunk, found) = match buf.iter().position(|b| *b == b'\n') {
                    Some(at) => (&buf[..at], true),
                    None => (buf, false),
                };
                if !too_long {
                    if bytes.len() + chunk.len() > self.max_bytes {
                        too_long = true;
                        bytes = Vec::new();
                    } else {
                        bytes.extend_from_slice(chunk);
                    }
                }
                let used = chunk.len() + usize::from(found);
                self.input.consume(used);
                if found {
                    self.line += 1;
                    break;
                }
            }
            if too_long {
                return Ok(Some(Piece::Bad {
                    line,
                    code: "RECORD_TOO_LARGE",
                    detail: format!("a record must be at most {} bytes", self.max_bytes),
                }));
            }
            if bytes.iter().all(u8::is_ascii_whitespace) {
                if ended {
                    self.state = State::Done;
                    return Ok(None);
                }
                continue;
            }
            return Ok(Some(Piece::Record { line, bytes }));
        }
    }

    /// Reads one JSON value's bytes (the first byte is next), tracking strings and nesting.
    fn element(&mut self) -> std::io::Result<Result<Vec<u8>, (&'static str, String)>> {
        let mut bytes = Vec::new();
        let (mut too_long, mut taken) = (false, 0usize);
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        loop {
            let Some(b) = self.peek()? else {
                return Ok(Err((
                    "INVALID_JSON",
                    "the file ends inside a record".into(),
                )));
            };
            if !in_string && depth == 0 && matches!(b, b',' | b']') && taken > 0 {
                break;
            }
            self.bump();
            taken += 1;
            if b == b'\n' {
                self.line += 1;
            }
            if !too_long {
                if bytes.len() >= self.max_bytes {
                    too_long = true;
                    bytes = Vec::new();
                } else {
                    bytes.push(b);
                }
            }
            if in_string {
                match (escaped, b) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
        }
        Ok(match too_long {
            true => Err((
                "RECORD_TOO_LARGE",
                format!("a record must be at most {} bytes", self.max_bytes),
            )),
            false => Ok(bytes),
        })
    }

    fn next_element(&mut self) -> std::io::Result<Option<Piece>> {
        loop {
            let next = self.skip_space()?;
            match (self.state, next) {
                (State::Done, _) => return Ok(None),
                (State::Outside, None) => {
                    self.state = State::Done;
                    return Ok(None);
                }
                (State::Outside, Some(b'[')) => {
                    self.bump();
                    self.state = State::BeforeElement;
                }
                (State::Outside, Some(_)) => {
                    return Ok(self.broken(
                        "INVALID_JSON",
                        "an application/json import is a JSON array of records (or several)",
                    ))
                }
                (State::BeforeElement | State::AfterElement, None) => {
                    return Ok(self.broken("INVALID_JSON", "the file ends inside an array"))
                }
                (State::BeforeElement | State::AfterElement, Some(b']')) => {
                    self.bump();
                    self.state = State::Outside;
                }
                (State::AfterElement, Some(b',')) => {
                    self.bump();
                    self.state = State::BeforeElement;
                }
                (State::AfterElement, Some(_)) => {
                    return Ok(self.broken("INVALID_JSON", "expected , or ] after a record"))
                }
                (State::BeforeElement, Some(b',')) => {
                    return Ok(self.broken("INVALID_JSON", "an array holds an empty record"))
                }
                (State::BeforeElement, Some(_)) => {
                    let line = self.line;
                    let element = self.element()?;
                    self.state = State::AfterElement;
                    return Ok(Some(match element {
                        Ok(bytes) => Piece::Record { line, bytes },
                        Err(("RECORD_TOO_LARGE", detail)) => Piece::Bad {
                            line,
                            code: "RECORD_TOO_LARGE",
                            detail,
                        },
                        Err((code, detail)) => {
                            self.state = State::Done;
                            Piece::Broken { line, code, detail }
                        }
                    }));
                }
            }
        }
    }
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = std::io::Result<Piece>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.state == State::Done {
            return None;
        }
        if let Err(e) = self.skip_bom() {
            return Some(Err(e));
        }
        let next = match self.format {
            Format::Ndjson => self.next_line(),
            Format::JsonArray => self.next_element(),
        };
        next.transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(format: Format, input: &str, max: usize) -> Vec<String> {
        Reader::new(input.as_bytes(), format, max)
            .map(|piece| match piece.unwrap() {
                Piece::Record { line, bytes } => {
                    format!("{line}:{}", String::from_utf8(bytes).unwrap())
                }
                Piece::Bad { line, code, .. } => format!("{line}:bad {code}"),
                Piece::Broken { line, code, .. } => format!("{line}:broken {code}"),
            })
            .collect()
    }

    #[test]
    fn ndjson_lines_keep_their_numbers() {
        let input = "{\"a\":1}\n\n{\"b\":2}\r\n   \n{\"c\":\"x\"}";
        assert_eq!(
            pieces(Format::Ndjson, input, 100),
            ["1:{\"a\":1}", "3:{\"b\":2}\r", "5:{\"c\":\"x\"}"]
        );
        let long = format!("{{\"a\":\"{}\"}}\n{{}}\n", "x".repeat(50));
        assert_eq!(
            pieces(Format::Ndjson, &long, 20),
            ["1:bad RECORD_TOO_LARGE", "2:{}"]
        );
        assert!(pieces(Format::Ndjson, "", 10).is_empty());
        assert_eq!(
            pieces(Format::Ndjson, "\u{feff}{}\n{}", 10),
            ["1:{}", "2:{}"]
        );
        assert_eq!(pieces(Format::JsonArray, "\u{feff}[{}]", 10), ["1:{}"]);
    }

    #[test]
    fn arrays_split_into_records_whatever_their_layout() {
        let input = "[\n  {\"a\": \"],\\\"{\"},\n  {\"b\": [1, {\"c\": 2}]}\n]\n[{\"d\":3}]";
        assert_eq!(
            pieces(Format::JsonArray, input, 100),
            [
                "2:{\"a\": \"],\\\"{\"}",
                "3:{\"b\": [1, {\"c\": 2}]}",
                "5:{\"d\":3}"
            ]
        );
        assert!(pieces(Format::JsonArray, "[]", 10).is_empty());
        assert_eq!(pieces(Format::JsonArray, "[1, tru]", 10), ["1:1", "1:tru"]);
    }

    #[test]
    fn broken_arrays_stop_with_the_line() {
        assert_eq!(
            pieces(Format::JsonArray, "{\"a\":1}", 100),
            ["1:broken INVALID_JSON"]
        );
        assert_eq!(
            pieces(Format::JsonArray, "[{\"a\":1}\n{\"b\":2}]", 100),
            ["1:{\"a\":1}", "2:broken INVALID_JSON"]
        );
        assert_eq!(
            pieces(Format::JsonArray, "[{\"a\":1},\n{\"b\":", 100),
            ["1:{\"a\":1}", "2:broken INVALID_JSON"]
        );
        assert_eq!(
            pieces(
                Format::JsonArray,
                "[{\"a\":\"xxxxxxxxxxxxxxxxxxxxxx\"}, {}]",
                10
            ),
            ["1:bad RECORD_TOO_LARGE", "1:{}"]
        );
    }
}
