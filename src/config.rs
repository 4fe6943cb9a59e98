//! Typed configuration: working defaults for `cargo run`, an optional `jiesuan.toml`, and
//! `DATABASE_URL` / `JIESUAN_*` environment overrides. Loaded once into `AppState`.

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayMode {
    /// The built-in sandbox plays WeChat Pay and Ping++; nothing leaves the machine.
    Sandbox,
    /// Real platforms; refuses to start without keys.
    Live,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WechatConfig {
    pub appid: String,
    pub app_secret: String,
    pub mch_id: String,
    pub api_key: String,
    /// Base of `sns/jscode2session` (the mini-program login); sandbox mode points it at itself.
    pub login_base: Option<String>,
    /// Base of the pay API (`https://api.mch.weixin.qq.com`); sandbox mode points it at itself.
    pub pay_base: Option<String>,
    /// PEM file with the merchant's client certificate and key (refunds; live mode).
    pub client_cert_pem: Option<String>,
}

impl Default for WechatConfig {
    fn default() -> Self {
        // Sandbox credentials: they only work against the built-in sandbox.
        WechatConfig {
            appid: "wxsandbox0000001".into(),
            app_secret: "sandbox-app-secret".into(),
            mch_id: "1900000109".into(),
            api_key: "sandboxsandboxsandboxsandbox0001".into(),
            login_base: None,
            pay_base: None,
            client_cert_pem: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PingppConfig {
    pub app_id: String,
    pub secret_key: String,
    /// PEM file of the "Ping++ 公钥" that signs webhooks.
    pub webhook_public_key: String,
    /// PEM file of the merchant private key; when set, requests carry `Pingplusplus-Signature`.
    pub merchant_private_key: Option<String>,
    /// `https://api.pingxx.com`; sandbox mode points it at itself.
    pub api_base: Option<String>,
}

impl Default for PingppConfig {
    fn default() -> Self {
        // Sandbox credentials: they only work against the built-in sandbox.
        PingppConfig {
            app_id: "app_SandboxJiesuan01".into(),
            secret_key: "sk_test_sandboxjiesuan000000000".into(),
            webhook_public_key: "keys/sandbox/pingpp_platform_public.pem".into(),
            merchant_private_key: None,
            api_base: None,
        }
    }
}

/// The built-in sandbox (sandbox mode only).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    /// Where the shop reaches the sandbox; defaults to its own `/sandbox`.
    pub url: Option<String>,
    /// PEM file the sandbox signs Ping++ webhooks with (test-only key in the repo).
    pub pingpp_private_key: String,
    /// PEM file of the merchant public key; when set, the sandbox requires and checks the
    /// merchant request signature.
    pub merchant_public_key: Option<String>,
    /// Notification retry delays are the platforms' real schedule divided by this.
    pub retry_divisor: u32,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            url: None,
            pingpp_private_key: "keys/sandbox/pingpp_platform_private.pem".into(),
            merchant_public_key: None,
            retry_divisor: 1000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub database_url: String,
    pub bind: String,
    /// The URL the shop is reached at from outside (QR codes, notify URLs). Defaults to
    /// `http://` + the bound address.
    pub public_url: Option<String>,
    pub pay_mode: PayMode,
    pub order_timeout_minutes: i64,
    pub token_ttl_minutes: i64,
    /// 64+ bytes as hex, shared by every instance; sandbox mode makes one under `data/`.
    pub session_secret: Option<String>,
    pub db_pool_size: u32,
    pub seed_demo_data: bool,
    /// Pending attempts older than this are asked about at their gateway.
    pub query_pending_after_seconds: i64,
    /// How often the background jobs run: reconciliation sweep, timeout close, refund
    /// queries (0 = never).
    pub sweep_interval_seconds: u64,
    /// The callback alarm: no verified notification for this long while payments are
    /// confirmed by query...
    pub callback_alarm_after_seconds: i64,
    /// ...at least this many times.
    pub callback_alarm_min_confirmations: i64,
    /// How long a call to a payment platform may take before it counts as unanswered.
    pub platform_timeout_seconds: u64,
    pub wechat: WechatConfig,
    pub pingpp: PingppConfig,
    pub sandbox: SandboxConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: "sqlite://data/jiesuan.db".into(),
            bind: "127.0.0.1:8080".into(),
            public_url: None,
            pay_mode: PayMode::Sandbox,
            order_timeout_minutes: 30,
            token_ttl_minutes: 120,
            session_secret: None,
            db_pool_size: 10,
            seed_demo_data: true,
            query_pending_after_seconds: 120,
            sweep_interval_seconds: 30,
            callback_alarm_after_seconds: 1800,
            callback_alarm_min_confirmations: 2,
            platform_timeout_seconds: 10,
            wechat: WechatConfig::default(),
            pingpp: PingppConfig::default(),
            sandbox: SandboxConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    #[error("invalid {0}: {1}")]
    Toml(String, toml::de::Error),
    #[error("invalid environment variable {0}: {1}")]
    Env(&'static str, String),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Defaults, then `jiesuan.toml` (or the file `JIESUAN_CONFIG` names), then the environment.
    pub fn load() -> Result<Config, ConfigError> {
        let path = std::env::var("JIESUAN_CONFIG").ok();
        let file = path.clone().unwrap_or_else(|| "jiesuan.toml".into());
        let mut cfg = match std::fs::read_to_string(&file) {
            Ok(text) => toml::from_str(&text).map_err(|e| ConfigError::Toml(file.clone(), e))?,
            Err(e) if path.is_none() && e.kind() == std::io::ErrorKind::NotFound => {
                Config::default()
            }
            Err(e) => return Err(ConfigError::Read(file, e)),
        };
        cfg.apply_env(|k| std::env::var(k).ok())?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Applies `DATABASE_URL`, `JIESUAN_BIND` and the other `JIESUAN_*` overrides.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn num<T: std::str::FromStr>(k: &'static str, v: String) -> Result<T, ConfigError> {
            v.parse().map_err(|_| ConfigError::Env(k, v))
        }
        if let Some(v) = get("DATABASE_URL") {
            self.database_url = v;
        }
        if let Some(v) = get("JIESUAN_BIND") {
            self.bind = v;
        }
        if let Some(v) = get("JIESUAN_PUBLIC_URL") {
            self.public_url = Some(v);
        }
        if let Some(v) = get("JIESUAN_PAY_MODE") {
            self.pay_mode = match v.as_str() {
                "sandbox" => PayMode::Sandbox,
                "live" => PayMode::Live,
                _ => return Err(ConfigError::Env("JIESUAN_PAY_MODE", v)),
            };
        }
        if let Some(v) = get("JIESUAN_ORDER_TIMEOUT_MINUTES") {
            self.order_timeout_minutes = num("JIESUAN_ORDER_TIMEOUT_MINUTES", v)?;
        }
        if let Some(v) = get("JIESUAN_TOKEN_TTL_MINUTES") {
            self.token_ttl_minutes = num("JIESUAN_TOKEN_TTL_MINUTES", v)?;
        }
        if let Some(v) = get("JIESUAN_DB_POOL_SIZE") {
            self.db_pool_size = num("JIESUAN_DB_POOL_SIZE", v)?;
        }
        if let Some(v) = get("JIESUAN_SESSION_SECRET") {
            self.session_secret = Some(v);
        }
        if let Some(v) = get("JIESUAN_SEED_DEMO_DATA") {
            self.seed_demo_data = v == "1" || v == "true";
        }
        if let Some(v) = get("JIESUAN_QUERY_PENDING_AFTER_SECONDS") {
            self.query_pending_after_seconds = num("JIESUAN_QUERY_PENDING_AFTER_SECONDS", v)?;
        }
        if let Some(v) = get("JIESUAN_CALLBACK_ALARM_AFTER_SECONDS") {
            self.callback_alarm_after_seconds = num("JIESUAN_CALLBACK_ALARM_AFTER_SECONDS", v)?;
        }
        if let Some(v) = get("JIESUAN_PLATFORM_TIMEOUT_SECONDS") {
            self.platform_timeout_seconds = num("JIESUAN_PLATFORM_TIMEOUT_SECONDS", v)?;
        }
        if let Some(v) = get("JIESUAN_SWEEP_INTERVAL_SECONDS") {
            self.sweep_interval_seconds = num("JIESUAN_SWEEP_INTERVAL_SECONDS", v)?;
        }
        for (key, slot) in [
            ("JIESUAN_PINGPP_APP_ID", &mut self.pingpp.app_id),
            ("JIESUAN_PINGPP_SECRET_KEY", &mut self.pingpp.secret_key),
            (
                "JIESUAN_PINGPP_WEBHOOK_PUBLIC_KEY",
                &mut self.pingpp.webhook_public_key,
            ),
        ] {
            if let Some(v) = get(key) {
                *slot = v;
            }
        }
        let wx = &mut self.wechat;
        for (key, slot) in [
            ("JIESUAN_WECHAT_APPID", &mut wx.appid),
            ("JIESUAN_WECHAT_APP_SECRET", &mut wx.app_secret),
            ("JIESUAN_WECHAT_MCH_ID", &mut wx.mch_id),
            ("JIESUAN_WECHAT_API_KEY", &mut wx.api_key),
        ] {
            if let Some(v) = get(key) {
                *slot = v;
            }
        }
        Ok(())
    }

    /// Refuses settings that cannot work, before anything starts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        if !(1..=24 * 60).contains(&self.order_timeout_minutes) {
            return bad("order_timeout_minutes must be between 1 and 1440");
        }
        if !(1..=60 * 24 * 30).contains(&self.token_ttl_minutes) {
            return bad("token_ttl_minutes must be between 1 and 43200");
        }
        if !(1..=200).contains(&self.db_pool_size) {
            return bad("db_pool_size must be between 1 and 200");
        }
        if let Some(s) = &self.session_secret {
            if hex::decode(s).map(|b| b.len() < 64).unwrap_or(true) {
                return bad("session_secret must be at least 64 bytes written as hex");
            }
        }
        if !(1..=120).contains(&self.platform_timeout_seconds) {
            return bad("platform_timeout_seconds must be between 1 and 120");
        }
        if self.pay_mode == PayMode::Live {
            self.validate_live()?;
        }
        Ok(())
    }

    /// Live mode: nothing of the sandbox may pay a real order (its keys, its app ids, test
    /// keys), and nothing the platforms refuse may start.
    fn validate_live(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        // WeChat refuses a time_expire less than 5 minutes ahead; a shorter hold would
        // make every payment fail (sandbox mode allows it, for tests).
        if self.order_timeout_minutes < 5 {
            return bad("live mode needs order_timeout_minutes of at least 5: WeChat Pay refuses a payment window shorter than 5 minutes");
        }
        let wx = &self.wechat;
        let wx_sandbox = WechatConfig::default();
        if wx.appid == wx_sandbox.appid
            || wx.mch_id == wx_sandbox.mch_id
            || wx.api_key == wx_sandbox.api_key
            || wx.app_secret == wx_sandbox.app_secret
        {
            return bad("live mode needs the real WeChat appid, app_secret, mch_id and api_key, not the sandbox's");
        }
        let pp = &self.pingpp;
        let pp_sandbox = PingppConfig::default();
        if pp.app_id == pp_sandbox.app_id
            || pp.secret_key == pp_sandbox.secret_key
            || pp.webhook_public_key == pp_sandbox.webhook_public_key
        {
            return bad("live mode needs the real Ping++ app_id, secret key and webhook public key, not the sandbox's");
        }
        if !pp.secret_key.starts_with("sk_live_") {
            return bad("live mode needs a Ping++ live secret key (sk_live_…): a test key (sk_test_…) creates charges that are paid without money");
        }
        if wx.client_cert_pem.is_none() {
            return bad(
                "live mode needs wechat.client_cert_pem (the merchant certificate, for refunds)",
            );
        }
        if self.sandbox.url.is_some() {
            return bad("live mode cannot use the sandbox");
        }
        if self.session_secret.is_none() {
            return bad("live mode needs session_secret (shared by every instance)");
        }
        match &self.public_url {
            None => return bad("live mode needs public_url (notify URLs and QR codes)"),
            Some(u) if !u.starts_with("https://") => {
                return bad("live mode needs an https:// public_url: the platforms deliver notifications to it and shoppers open it in their payment apps")
            }
            Some(_) => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_the_defaults() {
        let mut cfg = Config::default();
        let env = |k: &str| match k {
            "DATABASE_URL" => Some("mysql://root@127.0.0.1/test".to_string()),
            "JIESUAN_ORDER_TIMEOUT_MINUTES" => Some("5".to_string()),
            _ => None,
        };
        assert!(cfg.apply_env(env).is_ok());
        assert_eq!(cfg.database_url, "mysql://root@127.0.0.1/test");
        assert_eq!(cfg.order_timeout_minutes, 5);
    }

    #[test]
    fn live_mode_refuses_sandbox_keys() {
        let cfg = Config {
            pay_mode: PayMode::Live,
            ..Config::default()
        };
        assert!(cfg.validate().is_err());
        assert!(Config::default().validate().is_ok());
    }

    /// A live configuration that passes; each test spoils one thing.
    fn live() -> Config {
        Config {
            pay_mode: PayMode::Live,
            public_url: Some("https://shop.example.com".into()),
            session_secret: Some("ab".repeat(64)),
            wechat: WechatConfig {
                appid: "wx1234567890abcdef".into(),
                app_secret: "0123456789abcdef0123456789abcdef".into(),
                mch_id: "1230000109".into(),
                api_key: "k".repeat(32),
                client_cert_pem: Some("/etc/jiesuan/apiclient.pem".into()),
                ..WechatConfig::default()
            },
            pingpp: PingppConfig {
                app_id: "app_1Gqj58ynP0mHeX1q".into(),
                secret_key: "sk_live_0123456789abcdefghijkl".into(),
                webhook_public_key: "/etc/jiesuan/pingpp.pem".into(),
                ..PingppConfig::default()
            },
            ..Config::default()
        }
    }

    fn refusal(cfg: &Config) -> String {
        match cfg.validate() {
            Err(e) => e.to_string(),
            Ok(()) => String::new(),
        }
    }

    #[test]
    fn live_mode_refuses_test_keys_sandbox_ids_plain_http_and_short_holds() {
        assert_eq!(refusal(&live()), "", "the live baseline is valid");
        let mut test_key = live();
        test_key.pingpp.secret_key = "sk_test_0123456789abcdefghijkl".into();
        assert!(refusal(&test_key).contains("sk_live_"));
        let mut sandbox_app = live();
        sandbox_app.pingpp.app_id = PingppConfig::default().app_id;
        assert!(refusal(&sandbox_app).contains("Ping++ app_id"));
        let mut sandbox_secret = live();
        sandbox_secret.wechat.app_secret = WechatConfig::default().app_secret;
        assert!(refusal(&sandbox_secret).contains("app_secret"));
        let mut plain = live();
        plain.public_url = Some("http://shop.example.com".into());
        assert!(refusal(&plain).contains("https://"));
        let mut short = live();
        short.order_timeout_minutes = 4;
        assert!(refusal(&short).contains("at least 5"));
        let sandbox_short = Config {
            order_timeout_minutes: 1,
            ..Config::default()
        };
        assert_eq!(
            refusal(&sandbox_short),
            "",
            "sandbox mode keeps short holds for tests"
        );
    }

    #[test]
    fn a_bad_number_names_its_variable() {
        let mut cfg = Config::default();
        let err = cfg.apply_env(|k| (k == "JIESUAN_DB_POOL_SIZE").then(|| "many".to_string()));
        assert!(matches!(
            err,
            Err(ConfigError::Env("JIESUAN_DB_POOL_SIZE", _))
        ));
    }
}
