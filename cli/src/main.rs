//! The `tidings` command line.

fn main() {}
