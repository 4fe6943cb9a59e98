//! WeChat: the mini-program login, and (with the pay issue) WeChat Pay v2.

pub mod login;
