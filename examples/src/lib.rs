//! Shared bank domain for the example programs (arrives with the examples issue).
#![forbid(unsafe_code)]
