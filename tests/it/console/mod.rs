//! The browser console: its session rules over HTTP (`sessions`), and its pages in a real
//! browser (`browser`).

mod browser;
mod sessions;
