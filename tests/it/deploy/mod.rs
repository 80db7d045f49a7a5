//! Deploying: the systemd unit and its env file checked against systemd and the server
//! (`unit`), and the migrations held to the upgrade policy (`migrations`). README.md,
//! "Deploying", is what they back.

mod migrations;
mod unit;
