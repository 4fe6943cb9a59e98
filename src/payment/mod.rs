//! Payment platforms' wire formats, signing and clients. May import domain and config.

pub mod pingpp;
pub mod wechat;
