//! The built-in sandbox: plays the payment platforms byte for byte so the whole flow runs
//! offline. May import payment (wire formats and signing) and config, never services.

pub mod wxlogin;
