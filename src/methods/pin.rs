//! PIN rules: digits only, 4 to 12 of them, and not trivially guessable.

use crate::error::{Error, Result};

/// Fewest and most digits of a PIN.
pub const MIN_PIN_DIGITS: usize = 4;
pub const MAX_PIN_DIGITS: usize = 12;

/// Checks a PIN to enroll: 4–12 ASCII digits, not one digit repeated (`1111`) and not a straight
/// run up or down (`1234`, `9876`), the PINs tried first by anyone guessing.
pub fn check_new(pin: &str) -> Result<()> {
    check_form(pin)?;
    let digits: Vec<i8> = pin.bytes().map(|b| (b - b'0') as i8).collect();
    if digits.iter().all(|d| *d == digits[0]) {
        return Err(Error::Invalid(
            "PIN must not be one digit repeated (such as 1111): choose a harder one".into(),
        ));
    }
    for step in [1, -1] {
        if digits.windows(2).all(|w| w[1] - w[0] == step) {
            return Err(Error::Invalid(
                "PIN must not be a straight run of digits (such as 1234 or 9876): choose a harder one"
                    .into(),
            ));
        }
    }
    Ok(())
}

/// Checks the form of a PIN being verified (a PIN that could never have been enrolled is not
/// hashed, but is still a failed attempt).
pub fn check_form(pin: &str) -> Result<()> {
    let len = pin.len();
    if !pin.bytes().all(|b| b.is_ascii_digit()) || !(MIN_PIN_DIGITS..=MAX_PIN_DIGITS).contains(&len)
    {
        return Err(Error::Invalid(format!(
            "PIN must be {MIN_PIN_DIGITS} to {MAX_PIN_DIGITS} digits (0-9)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_digits_of_the_right_length() {
        for ok in ["135790", "246801", "2580", "120987654321", "1121"] {
            assert!(check_new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "123",
            "1234567890123",
            "12a4",
            "１２３４",
            " 1357",
            "",
            "13 57",
        ] {
            assert!(check_new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn guessable_pins_are_refused_with_a_reason() {
        for bad in [
            "0000",
            "999999",
            "1234",
            "0123456789",
            "9876",
            "543210",
            "4567",
        ] {
            let msg = check_new(bad).unwrap_err().to_string();
            assert!(msg.contains("PIN must not"), "{bad}: {msg}");
        }
    }
}
