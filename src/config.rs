//! Typed configuration: working defaults for `cargo run`, an optional `jiesuan.toml`, and
//! `DATABASE_URL` / `JIESUAN_*` environment overrides. Loaded once into `AppState`.

use serde::Deserialize;
use std::fmt;
use std::net::Ipv4Addr;

/// Stands for a secret in `Debug` output: says whether it is set, never what it is.
pub struct Redacted<'a>(pub &'a str);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "<redacted>"
        })
    }
}

/// A URL with the password of its user info (`mysql://user:password@host`) replaced.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((user_info, host)) if user_info.contains(':') => {
            let user = user_info.split(':').next().unwrap_or_default();
            format!(
                "{scheme}://{user}:<redacted>@{host}{}",
                &rest[authority_end..]
            )
        }
        _ => url.to_string(),
    }
}

/// Who takes the one-QR payments: Ping++ (an aggregator account), or the shop itself with
/// its direct Alipay (and WeChat Pay) accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cashier {
    Pingpp,
    Direct,
}

/// How log lines are written: plain text, or one JSON object per line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayMode {
    /// The built-in sandbox plays WeChat Pay and Ping++; nothing leaves the machine.
    Sandbox,
    /// Real platforms; refuses to start without keys.
    Live,
}

#[derive(Clone, Deserialize)]
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
    /// Which WeChat Pay API the shop speaks: the XML v2 or the JSON APIv3.
    pub api_version: ApiVersion,
    /// APIv3: PEM file of the merchant API private key (signs every request).
    pub v3_private_key: String,
    /// APIv3: serial number (hex) of the merchant API certificate, sent as `serial_no`.
    pub v3_cert_serial: String,
    /// APIv3 key: 32 ASCII bytes, the AES-256-GCM key of notifications and certificates.
    pub apiv3_key: String,
    /// APIv3 public-key mode: the id (`PUB_KEY_ID_…`) of the WeChat Pay public key.
    pub v3_public_key_id: Option<String>,
    /// APIv3 public-key mode: PEM file of the WeChat Pay public key. Set (with its id):
    /// answers and notifications are verified with it; unset: platform-certificate mode
    /// (`GET /v3/certificates`).
    pub v3_public_key: Option<String>,
    /// Base of the APIv3 (`https://api.mch.weixin.qq.com`); sandbox mode points it at itself.
    pub v3_base: Option<String>,
    /// The Official Account (公众号) bound to the merchant: with `cashier = "direct"` the
    /// shop's cashier opened in WeChat learns the payer's openid by its web OAuth
    /// (snsapi_base) and pays with a JSAPI payment under this appid.
    pub oa_appid: String,
    pub oa_app_secret: String,
    /// Base of the OAuth authorize page (`https://open.weixin.qq.com`); sandbox mode points
    /// it at itself.
    pub oauth_base: Option<String>,
}

/// The WeChat Pay API generation the shop uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiVersion {
    V2,
    V3,
}

/// The sandbox merchant's APIv3 private key (test-only, committed), the default path.
pub const SANDBOX_V3_PRIVATE_KEY: &str = "keys/sandbox/wechat_v3_merchant_private.pem";
/// The sandbox merchant certificate's serial number.
pub const SANDBOX_V3_CERT_SERIAL: &str = "6B2F0F1D57E39A4C8D2E4B7A9C1E3F5A7B9D0C2E";
/// The sandbox's Official Account (bound to the sandbox merchant, and to Ping++'s `wx_pub`).
pub const SANDBOX_OA_APPID: &str = "wxsandboxoffacct1";
/// The sandbox merchant's APIv3 key.
pub const SANDBOX_APIV3_KEY: &str = "sandboxapiv3key0sandboxapiv3key1";

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
            api_version: ApiVersion::V2,
            v3_private_key: SANDBOX_V3_PRIVATE_KEY.into(),
            v3_cert_serial: SANDBOX_V3_CERT_SERIAL.into(),
            apiv3_key: SANDBOX_APIV3_KEY.into(),
            v3_public_key_id: None,
            v3_public_key: None,
            v3_base: None,
            oa_appid: SANDBOX_OA_APPID.into(),
            oa_app_secret: "sandbox-oa-app-secret".into(),
            oauth_base: None,
        }
    }
}

#[derive(Clone, Deserialize)]
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

impl fmt::Debug for WechatConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WechatConfig")
            .field("appid", &self.appid)
            .field("app_secret", &Redacted(&self.app_secret))
            .field("mch_id", &self.mch_id)
            .field("api_key", &Redacted(&self.api_key))
            .field("login_base", &self.login_base)
            .field("pay_base", &self.pay_base)
            .field("client_cert_pem", &self.client_cert_pem)
            .field("api_version", &self.api_version)
            .field("v3_private_key", &self.v3_private_key)
            .field("v3_cert_serial", &self.v3_cert_serial)
            .field("apiv3_key", &Redacted(&self.apiv3_key))
            .field("v3_public_key_id", &self.v3_public_key_id)
            .field("v3_public_key", &self.v3_public_key)
            .field("v3_base", &self.v3_base)
            .field("oa_appid", &self.oa_appid)
            .field("oa_app_secret", &Redacted(&self.oa_app_secret))
            .field("oauth_base", &self.oauth_base)
            .finish()
    }
}

impl fmt::Debug for PingppConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PingppConfig")
            .field("app_id", &self.app_id)
            .field("secret_key", &Redacted(&self.secret_key))
            .field("webhook_public_key", &self.webhook_public_key)
            .field("merchant_private_key", &self.merchant_private_key)
            .field("api_base", &self.api_base)
            .finish()
    }
}

/// Alipay direct (the open platform's `gateway.do`): the app's id, the merchant's PID, and
/// the keys of public-key mode, or certificates as well (certificate mode).
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlipayConfig {
    /// The app's APPID on the open platform (16 digits, `2021…`).
    pub app_id: String,
    /// The merchant's PID (`2088…`): notifications must name it as `seller_id`.
    pub seller_id: String,
    /// PEM file of the app's RSA2 private key (signs every request).
    pub app_private_key: String,
    /// PEM file of Alipay's public key (verifies answers and notifications). In certificate
    /// mode the key inside `alipay_cert` is the one that counts.
    pub alipay_public_key: String,
    /// `https://openapi.alipay.com/gateway.do`; sandbox mode points it at itself.
    pub gateway: Option<String>,
    /// Certificate mode: the app's public-key certificate (`appCertPublicKey_<appid>.crt`).
    pub app_cert: Option<String>,
    /// Certificate mode: Alipay's public-key certificate (`alipayCertPublicKey_RSA2.crt`).
    pub alipay_cert: Option<String>,
    /// Certificate mode: Alipay's root certificate(s) (`alipayRootCert.crt`).
    pub alipay_root_cert: Option<String>,
}

/// The sandbox app's APPID (the `[alipay]` default; live mode refuses it).
pub const SANDBOX_ALIPAY_APP_ID: &str = "2021000100000001";
/// The sandbox merchant's PID.
pub const SANDBOX_ALIPAY_SELLER_ID: &str = "2088102100000001";

impl Default for AlipayConfig {
    fn default() -> Self {
        // Sandbox credentials: they only work against the built-in sandbox.
        AlipayConfig {
            app_id: SANDBOX_ALIPAY_APP_ID.into(),
            seller_id: SANDBOX_ALIPAY_SELLER_ID.into(),
            app_private_key: "keys/sandbox/alipay_app_private.pem".into(),
            alipay_public_key: "keys/sandbox/alipay_platform_public.pem".into(),
            gateway: None,
            app_cert: None,
            alipay_cert: None,
            alipay_root_cert: None,
        }
    }
}

impl AlipayConfig {
    /// Certificate mode: all three certificates configured.
    pub fn certificate_mode(&self) -> bool {
        self.app_cert.is_some() && self.alipay_cert.is_some() && self.alipay_root_cert.is_some()
    }

    /// Settings that cannot work in any mode.
    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        let digits = |s: &str, prefix: &str| {
            s.len() == 16 && s.starts_with(prefix) && s.bytes().all(|b| b.is_ascii_digit())
        };
        if !self.app_id.bytes().all(|b| b.is_ascii_digit()) || self.app_id.is_empty() {
            return bad("alipay.app_id must be the app's APPID (digits)");
        }
        if !digits(&self.seller_id, "2088") {
            return bad("alipay.seller_id must be the merchant's PID: 16 digits starting 2088");
        }
        let certs = [
            ("alipay.app_cert", &self.app_cert),
            ("alipay.alipay_cert", &self.alipay_cert),
            ("alipay.alipay_root_cert", &self.alipay_root_cert),
        ];
        let missing: Vec<&str> = certs
            .iter()
            .filter(|(_, path)| path.is_none())
            .map(|(name, _)| *name)
            .collect();
        if !missing.is_empty() && missing.len() < certs.len() {
            return Err(ConfigError::Invalid(format!(
                "alipay.app_cert, alipay.alipay_cert and alipay.alipay_root_cert go together (certificate mode), or none (public-key mode): {} missing",
                missing.join(" and ")
            )));
        }
        Ok(())
    }

    /// Live mode: none of the sandbox's ids or keys (a sandbox key is published: anyone
    /// could sign "Alipay" notifications with it). In certificate mode `alipay_public_key`
    /// is never read, so its default does not count.
    fn validate_live(&self) -> Result<(), ConfigError> {
        let sandbox = |p: &str| p.starts_with("keys/sandbox/");
        let sandbox_cert = [&self.app_cert, &self.alipay_cert, &self.alipay_root_cert]
            .iter()
            .any(|c| c.as_deref().is_some_and(sandbox));
        if self.app_id == SANDBOX_ALIPAY_APP_ID
            || self.seller_id == SANDBOX_ALIPAY_SELLER_ID
            || sandbox(&self.app_private_key)
            || (!self.certificate_mode() && sandbox(&self.alipay_public_key))
            || sandbox_cert
        {
            return Err(ConfigError::Invalid("live mode needs the real Alipay app_id, seller_id, app private key and Alipay public key (or certificates), not the sandbox's".into()));
        }
        Ok(())
    }
}

impl fmt::Debug for AlipayConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys are paths, not secrets; shown so a misconfiguration can be seen.
        f.debug_struct("AlipayConfig")
            .field("app_id", &self.app_id)
            .field("seller_id", &self.seller_id)
            .field("app_private_key", &self.app_private_key)
            .field("alipay_public_key", &self.alipay_public_key)
            .field("gateway", &self.gateway)
            .field("app_cert", &self.app_cert)
            .field("alipay_cert", &self.alipay_cert)
            .field("alipay_root_cert", &self.alipay_root_cert)
            .finish()
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
    /// PEM file of the merchant's APIv3 public key: the sandbox checks every APIv3 request's
    /// `Authorization` with it (test-only key in the repo).
    pub wechat_v3_merchant_public_key: String,
    /// PEM file of the app's public key: the sandbox's Alipay checks every request's RSA2
    /// signature with it (test-only key in the repo).
    pub alipay_app_public_key: String,
    /// PEM file the sandbox's Alipay signs answers and notifications with (test-only).
    pub alipay_private_key: String,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            url: None,
            pingpp_private_key: "keys/sandbox/pingpp_platform_private.pem".into(),
            merchant_public_key: None,
            retry_divisor: 1000,
            wechat_v3_merchant_public_key: "keys/sandbox/wechat_v3_merchant_public.pem".into(),
            alipay_app_public_key: "keys/sandbox/alipay_app_public.pem".into(),
            alipay_private_key: "keys/sandbox/alipay_platform_private.pem".into(),
        }
    }
}

#[derive(Clone, Deserialize)]
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
    /// The Beijing hour from which the daily reconciliation fetches yesterday's bills (the
    /// platforms make them in the morning); 24 = never by itself (`jiesuan reconcile`).
    pub reconcile_hour: u32,
    /// The server's public IPv4 address, sent as `spbill_create_ip` for NATIVE payments and
    /// for shoppers who reach the shop over IPv6 only. Live mode needs it; sandbox mode
    /// falls back to the bound address (or 127.0.0.1).
    pub server_ip: Option<String>,
    /// Proxies (CIDRs) whose `X-Forwarded-For` is believed; none by default, so the peer
    /// address is the shopper's.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// A directory whose `templates/` and `static/` files win over the embedded ones (a shop
    /// restyles without rebuilding; read at startup).
    pub assets_dir: Option<String>,
    /// On SIGTERM/SIGINT: how long in-flight requests and the current job step may take
    /// before the process exits anyway.
    pub shutdown_grace_seconds: u64,
    /// Serve `/metrics` (Prometheus text format); off by default.
    pub metrics: bool,
    /// When set, `/metrics` answers only `Authorization: Bearer <token>`.
    pub metrics_token: Option<String>,
    /// `text` (the default) or `json`: one object per line with ts, level, target, message
    /// and the request id.
    pub log_format: LogFormat,
    /// `pingpp` (the default) or `direct`: Alipay scans pay through the shop's own Alipay
    /// account (`[alipay]`) instead of a Ping++ charge.
    pub cashier: Cashier,
    pub wechat: WechatConfig,
    pub pingpp: PingppConfig,
    pub alipay: AlipayConfig,
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
            reconcile_hour: 10,
            server_ip: None,
            trusted_proxies: Vec::new(),
            assets_dir: None,
            shutdown_grace_seconds: 30,
            metrics: false,
            metrics_token: None,
            log_format: LogFormat::Text,
            cashier: Cashier::Pingpp,
            wechat: WechatConfig::default(),
            pingpp: PingppConfig::default(),
            alipay: AlipayConfig::default(),
            sandbox: SandboxConfig::default(),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let session_secret = self.session_secret.as_deref().map(Redacted);
        f.debug_struct("Config")
            .field("database_url", &without_password(&self.database_url))
            .field("bind", &self.bind)
            .field("public_url", &self.public_url)
            .field("pay_mode", &self.pay_mode)
            .field("order_timeout_minutes", &self.order_timeout_minutes)
            .field("token_ttl_minutes", &self.token_ttl_minutes)
            .field("session_secret", &session_secret)
            .field("db_pool_size", &self.db_pool_size)
            .field("seed_demo_data", &self.seed_demo_data)
            .field(
                "query_pending_after_seconds",
                &self.query_pending_after_seconds,
            )
            .field("sweep_interval_seconds", &self.sweep_interval_seconds)
            .field("reconcile_hour", &self.reconcile_hour)
            .field(
                "callback_alarm_after_seconds",
                &self.callback_alarm_after_seconds,
            )
            .field(
                "callback_alarm_min_confirmations",
                &self.callback_alarm_min_confirmations,
            )
            .field("server_ip", &self.server_ip)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("assets_dir", &self.assets_dir)
            .field("shutdown_grace_seconds", &self.shutdown_grace_seconds)
            .field("metrics", &self.metrics)
            .field("log_format", &self.log_format)
            .field("cashier", &self.cashier)
            .field(
                "metrics_token",
                &self.metrics_token.as_deref().map(Redacted),
            )
            .field("wechat", &self.wechat)
            .field("pingpp", &self.pingpp)
            .field("alipay", &self.alipay)
            .field("sandbox", &self.sandbox)
            .finish()
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
        if let Some(v) = get("JIESUAN_RECONCILE_HOUR") {
            self.reconcile_hour = num("JIESUAN_RECONCILE_HOUR", v)?;
        }
        if let Some(v) = get("JIESUAN_SWEEP_INTERVAL_SECONDS") {
            self.sweep_interval_seconds = num("JIESUAN_SWEEP_INTERVAL_SECONDS", v)?;
        }
        if let Some(v) = get("JIESUAN_ASSETS_DIR") {
            self.assets_dir = Some(v);
        }
        if let Some(v) = get("JIESUAN_SHUTDOWN_GRACE_SECONDS") {
            self.shutdown_grace_seconds = num("JIESUAN_SHUTDOWN_GRACE_SECONDS", v)?;
        }
        if let Some(v) = get("JIESUAN_LOG_FORMAT") {
            self.log_format = match v.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => return Err(ConfigError::Env("JIESUAN_LOG_FORMAT", v)),
            };
        }
        if let Some(v) = get("JIESUAN_CASHIER") {
            self.cashier = match v.as_str() {
                "pingpp" => Cashier::Pingpp,
                "direct" => Cashier::Direct,
                _ => return Err(ConfigError::Env("JIESUAN_CASHIER", v)),
            };
        }
        if let Some(v) = get("JIESUAN_WECHAT_API_VERSION") {
            self.wechat.api_version = match v.as_str() {
                "v2" => ApiVersion::V2,
                "v3" => ApiVersion::V3,
                _ => return Err(ConfigError::Env("JIESUAN_WECHAT_API_VERSION", v)),
            };
        }
        if let Some(v) = get("JIESUAN_METRICS") {
            self.metrics = v == "1" || v == "true";
        }
        if let Some(v) = get("JIESUAN_METRICS_TOKEN") {
            self.metrics_token = Some(v).filter(|t| !t.is_empty());
        }
        if let Some(v) = get("JIESUAN_SERVER_IP") {
            self.server_ip = Some(v);
        }
        if let Some(v) = get("JIESUAN_TRUSTED_PROXIES") {
            self.trusted_proxies = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse()
                        .map_err(|_| ConfigError::Env("JIESUAN_TRUSTED_PROXIES", v.clone()))
                })
                .collect::<Result<_, _>>()?;
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
        let ali = &mut self.alipay;
        for (key, slot) in [
            ("JIESUAN_ALIPAY_APP_ID", &mut ali.app_id),
            ("JIESUAN_ALIPAY_SELLER_ID", &mut ali.seller_id),
            ("JIESUAN_ALIPAY_APP_PRIVATE_KEY", &mut ali.app_private_key),
            ("JIESUAN_ALIPAY_PUBLIC_KEY", &mut ali.alipay_public_key),
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
            ("JIESUAN_WECHAT_APIV3_KEY", &mut wx.apiv3_key),
            ("JIESUAN_WECHAT_V3_PRIVATE_KEY", &mut wx.v3_private_key),
            ("JIESUAN_WECHAT_V3_CERT_SERIAL", &mut wx.v3_cert_serial),
            ("JIESUAN_WECHAT_OA_APPID", &mut wx.oa_appid),
            ("JIESUAN_WECHAT_OA_APP_SECRET", &mut wx.oa_app_secret),
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
        if self.cashier == Cashier::Direct && !self.alipay_enabled() {
            return bad("cashier = \"direct\" needs the shop's own Alipay app: set alipay.app_id and its keys");
        }
        if let Some(s) = &self.session_secret {
            if hex::decode(s).map(|b| b.len() < 64).unwrap_or(true) {
                return bad("session_secret must be at least 64 bytes written as hex");
            }
        }
        if let Some(ip) = &self.server_ip {
            if ip.parse::<Ipv4Addr>().is_err() {
                return bad("server_ip must be an IPv4 address");
            }
        }
        if !(1..=120).contains(&self.platform_timeout_seconds) {
            return bad("platform_timeout_seconds must be between 1 and 120");
        }
        if let Some(dir) = &self.assets_dir {
            if !std::path::Path::new(dir).is_dir() {
                return Err(ConfigError::Invalid(format!(
                    "assets_dir {dir} is not a directory"
                )));
            }
        }
        if self.reconcile_hour > 24 {
            return bad("reconcile_hour must be between 0 and 23 (Beijing time), or 24 for never");
        }
        if self.shutdown_grace_seconds > 3600 {
            return bad("shutdown_grace_seconds must be at most 3600");
        }
        self.wechat.validate_v3()?;
        self.alipay.validate()?;
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
        if !self.server_ip.as_deref().is_some_and(public_ipv4) {
            return bad("live mode needs server_ip, the server's public IPv4 address (spbill_create_ip of NATIVE payments)");
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
        if wx.api_version == ApiVersion::V3 {
            wx.validate_v3_live()?;
        }
        if self.alipay_enabled() {
            self.alipay.validate_live()?;
        }
        if self.wechat_cashier()
            && (wx.oa_app_secret.is_empty() || wx.oa_app_secret == wx_sandbox.oa_app_secret)
        {
            return bad("wechat.oa_appid is set: live mode needs the Official Account's own wechat.oa_app_secret (its web OAuth gives the cashier the payer's openid)");
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

    /// Whether the shop may take Alipay direct: always in sandbox mode; in live mode once
    /// `alipay.app_id` is the shop's own (then every Alipay key must be real, see
    /// `validate_live`). A live shop that leaves `[alipay]` alone does not take Alipay, so
    /// the published sandbox keys can never verify a live notification.
    pub fn alipay_enabled(&self) -> bool {
        self.pay_mode == PayMode::Sandbox || self.alipay.app_id != SANDBOX_ALIPAY_APP_ID
    }

    /// Whether the shop's own cashier takes WeChat scans (the Official Account's OAuth, then
    /// JSAPI): with `cashier = "direct"`, always in sandbox mode, in live mode once
    /// `wechat.oa_appid` is the shop's own. Otherwise a WeChat scan stays with Ping++'s
    /// `wx_pub_qr`, as before the shop had a cashier of its own.
    pub fn wechat_cashier(&self) -> bool {
        let oa = &self.wechat.oa_appid;
        self.cashier == Cashier::Direct
            && (self.pay_mode == PayMode::Sandbox || (!oa.is_empty() && oa != SANDBOX_OA_APPID))
    }

    /// The server's IPv4 address for the platforms: `server_ip`, else the bound address
    /// when it is a usable IPv4 one, else 127.0.0.1 (sandbox mode only: live mode refuses
    /// to start without `server_ip`).
    pub fn server_ipv4(&self) -> Ipv4Addr {
        let bound = self.bind.rsplit_once(':').map(|(host, _)| host);
        self.server_ip
            .as_deref()
            .into_iter()
            .chain(bound)
            .filter_map(|s| s.parse::<Ipv4Addr>().ok())
            .find(|ip| !ip.is_unspecified())
            .unwrap_or(Ipv4Addr::LOCALHOST)
    }
}

impl WechatConfig {
    /// The APIv3 settings that cannot work in any mode.
    fn validate_v3(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        if self.apiv3_key.len() != 32 || !self.apiv3_key.is_ascii() {
            return bad("wechat.apiv3_key must be 32 ASCII characters (the AES-256 key of APIv3 notifications)");
        }
        if self.v3_public_key.is_some() != self.v3_public_key_id.is_some() {
            return bad("wechat.v3_public_key and wechat.v3_public_key_id go together (public-key mode), or neither (platform-certificate mode)");
        }
        if self
            .v3_public_key_id
            .as_deref()
            .is_some_and(|id| !id.starts_with("PUB_KEY_ID_"))
        {
            return bad("wechat.v3_public_key_id must start with PUB_KEY_ID_");
        }
        Ok(())
    }

    /// Live APIv3: the merchant's own key, serial and APIv3 key, and no sandbox public key.
    fn validate_v3_live(&self) -> Result<(), ConfigError> {
        let sandbox = WechatConfig::default();
        if self.v3_private_key.is_empty()
            || self.v3_private_key == sandbox.v3_private_key
            || self.v3_private_key.starts_with("keys/sandbox/")
        {
            return Err(ConfigError::Invalid("live APIv3 needs wechat.v3_private_key, the merchant's own API private key, not the sandbox's".into()));
        }
        if self.v3_cert_serial.is_empty() || self.v3_cert_serial == sandbox.v3_cert_serial {
            return Err(ConfigError::Invalid("live APIv3 needs wechat.v3_cert_serial, the serial of the merchant's own API certificate".into()));
        }
        if self.apiv3_key == sandbox.apiv3_key {
            return Err(ConfigError::Invalid(
                "live APIv3 needs the merchant's own wechat.apiv3_key, not the sandbox's".into(),
            ));
        }
        let sandbox_public = self
            .v3_public_key
            .as_deref()
            .is_some_and(|p| p.starts_with("keys/sandbox/"))
            || self.v3_public_key_id.as_deref() == Some(SANDBOX_V3_PUBLIC_KEY_ID);
        if sandbox_public {
            return Err(ConfigError::Invalid(
                "live APIv3 needs the real WeChat Pay public key and its id, not the sandbox's"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// The id of the sandbox's "WeChat Pay public key" (public-key mode).
pub const SANDBOX_V3_PUBLIC_KEY_ID: &str = "PUB_KEY_ID_0119000001092026120100000000000001";
/// The sandbox's WeChat Pay public key (test-only, committed).
pub const SANDBOX_V3_PUBLIC_KEY: &str = "keys/sandbox/wechat_v3_pubkey_public.pem";

/// An IPv4 address the platforms can see the server at: not private, loopback,
/// link-local, unspecified, broadcast, multicast or reserved for documentation.
fn public_ipv4(s: &str) -> bool {
    s.parse::<Ipv4Addr>().is_ok_and(|ip| {
        !(ip.is_private()
            || ip.is_loopback()
            || ip.is_link_local()
            || ip.is_unspecified()
            || ip.is_broadcast()
            || ip.is_multicast()
            || ip.is_documentation())
    })
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

    /// A live configuration that passes every check but the one under test.
    fn live() -> Config {
        let mut cfg = Config {
            pay_mode: PayMode::Live,
            public_url: Some("https://shop.example.com".into()),
            session_secret: Some("ab".repeat(64)),
            server_ip: Some("203.0.114.7".into()),
            ..Config::default()
        };
        cfg.wechat.appid = "wx1234567890abcdef".into();
        cfg.wechat.app_secret = "0123456789abcdef0123456789abcdef".into();
        cfg.wechat.mch_id = "1230000109".into();
        cfg.wechat.api_key = "live-api-key-live-api-key-123456".into();
        cfg.wechat.client_cert_pem = Some("/etc/jiesuan/apiclient.pem".into());
        cfg.pingpp.app_id = "app_1Gqj58ynP0mHeX1q".into();
        cfg.pingpp.secret_key = "sk_live_secret".into();
        cfg.pingpp.webhook_public_key = "/etc/jiesuan/pingpp.pem".into();
        cfg
    }

    #[test]
    fn live_mode_needs_a_public_ipv4_server_ip() {
        assert!(live().validate().is_ok(), "{:?}", live().validate());
        for bad in [
            None,
            Some("::1"),
            Some("0.0.0.0"),
            Some("10.0.0.8"),
            Some("127.0.0.1"),
            Some("shop"),
        ] {
            let cfg = Config {
                server_ip: bad.map(str::to_string),
                ..live()
            };
            assert!(
                matches!(cfg.validate(), Err(ConfigError::Invalid(m)) if m.contains("server_ip")),
                "{bad:?}"
            );
        }
        let sandbox = Config {
            server_ip: Some("2001:db8::1".into()),
            ..Config::default()
        };
        assert!(
            sandbox.validate().is_err(),
            "server_ip is IPv4 in every mode"
        );
    }

    #[test]
    fn the_server_ip_falls_back_to_the_bound_ipv4_address() {
        let mut cfg = Config::default();
        assert_eq!(cfg.server_ipv4(), Ipv4Addr::new(127, 0, 0, 1));
        cfg.bind = "0.0.0.0:8080".into();
        assert_eq!(cfg.server_ipv4(), Ipv4Addr::LOCALHOST);
        cfg.bind = "192.168.1.20:8080".into();
        assert_eq!(cfg.server_ipv4(), Ipv4Addr::new(192, 168, 1, 20));
        cfg.server_ip = Some("203.0.114.7".into());
        assert_eq!(cfg.server_ipv4(), Ipv4Addr::new(203, 0, 114, 7));
    }

    #[test]
    fn trusted_proxies_come_from_the_environment() {
        let mut cfg = Config::default();
        assert!(cfg.trusted_proxies.is_empty());
        let env =
            |k: &str| (k == "JIESUAN_TRUSTED_PROXIES").then(|| "10.0.0.0/8, ::1/128".to_string());
        assert!(cfg.apply_env(env).is_ok());
        assert_eq!(cfg.trusted_proxies.len(), 2);
        let bad = |k: &str| (k == "JIESUAN_TRUSTED_PROXIES").then(|| "10.0.0.0/33".to_string());
        assert!(matches!(
            cfg.apply_env(bad),
            Err(ConfigError::Env("JIESUAN_TRUSTED_PROXIES", _))
        ));
    }

    #[test]
    fn debug_output_holds_no_secret() {
        let mut cfg = live();
        cfg.database_url = "mysql://shop:db-password-42@db.internal/shop".into();
        cfg.wechat.app_secret = "app-secret-9f8e7d".into();
        let text = format!("{cfg:?} {cfg:#?}");
        for secret in [
            "db-password-42",
            "app-secret-9f8e7d",
            cfg.wechat.api_key.as_str(),
            cfg.pingpp.secret_key.as_str(),
            cfg.session_secret.as_deref().unwrap_or("unset"),
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(
            text.contains("wx1234567890abcdef"),
            "the rest is still shown"
        );
        assert!(text.contains("mysql://shop:<redacted>@db.internal/shop"));
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
    fn live_apiv3_refuses_missing_or_sandbox_keys() {
        let mut v3 = live();
        v3.wechat.api_version = ApiVersion::V3;
        assert!(refusal(&v3).contains("v3_private_key"), "sandbox defaults");
        v3.wechat.v3_private_key = "/etc/jiesuan/apiclient_key.pem".into();
        assert!(refusal(&v3).contains("v3_cert_serial"));
        v3.wechat.v3_cert_serial = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1".into();
        assert!(refusal(&v3).contains("apiv3_key"));
        v3.wechat.apiv3_key = "0123456789abcdef0123456789abcdef".into();
        assert_eq!(refusal(&v3), "", "platform-certificate mode");
        let mut sandbox_public = v3.clone();
        sandbox_public.wechat.v3_public_key = Some(SANDBOX_V3_PUBLIC_KEY.into());
        sandbox_public.wechat.v3_public_key_id = Some(SANDBOX_V3_PUBLIC_KEY_ID.into());
        assert!(refusal(&sandbox_public).contains("public key"));
        let mut half = v3.clone();
        half.wechat.v3_public_key = Some("/etc/jiesuan/pub_key.pem".into());
        assert!(refusal(&half).contains("go together"));
        half.wechat.v3_public_key_id = Some("PUB_KEY_ID_0114232808342025010200394000000111".into());
        assert_eq!(refusal(&half), "", "public-key mode");
        let mut short = Config::default();
        short.wechat.apiv3_key = "too-short".into();
        assert!(refusal(&short).contains("32"), "in every mode");
        let mut v2 = live();
        v2.wechat.api_version = ApiVersion::V2;
        assert_eq!(refusal(&v2), "", "v2 needs no APIv3 keys");
        let text = format!("{v3:?}");
        assert!(!text.contains("0123456789abcdef0123456789abcdef"), "{text}");
    }

    #[test]
    fn live_alipay_refuses_every_sandbox_value_once_the_app_id_is_the_shops() {
        assert_eq!(
            refusal(&live()),
            "",
            "untouched [alipay]: no Alipay in live mode"
        );
        assert!(!live().alipay_enabled());
        assert!(Config::default().alipay_enabled(), "sandbox mode always");
        let mut ali = live();
        ali.alipay.app_id = "2021004123456789".into();
        assert!(ali.alipay_enabled());
        assert!(refusal(&ali).contains("Alipay"), "sandbox PID and keys");
        ali.alipay.seller_id = "2088621234567890".into();
        ali.alipay.app_private_key = "/etc/jiesuan/alipay_app_private.pem".into();
        assert!(refusal(&ali).contains("Alipay"), "the sandbox's public key");
        ali.alipay.alipay_public_key = "/etc/jiesuan/alipay_public.pem".into();
        assert_eq!(refusal(&ali), "", "public-key mode");
        let mut cert = ali.clone();
        cert.alipay.app_cert = Some("/etc/jiesuan/appCertPublicKey.crt".into());
        assert!(refusal(&cert).contains("go together"));
        cert.alipay.alipay_cert = Some("/etc/jiesuan/alipayCertPublicKey_RSA2.crt".into());
        cert.alipay.alipay_root_cert = Some("keys/sandbox/alipay_root_cert.pem".into());
        assert!(refusal(&cert).contains("Alipay"), "the sandbox's root");
        cert.alipay.alipay_root_cert = Some("/etc/jiesuan/alipayRootCert.crt".into());
        assert!(cert.alipay.certificate_mode());
        assert_eq!(refusal(&cert), "", "certificate mode");
        cert.alipay.alipay_public_key = AlipayConfig::default().alipay_public_key;
        assert_eq!(refusal(&cert), "", "the public key is not read then");
        let mut pid = Config::default();
        pid.alipay.seller_id = "1234".into();
        assert!(refusal(&pid).contains("2088"), "in every mode");
    }

    #[test]
    fn the_direct_cashier_takes_all_three_certificates_or_none() {
        let mut direct = Config {
            cashier: Cashier::Direct,
            ..Config::default()
        };
        assert_eq!(refusal(&direct), "", "public-key mode");
        direct.alipay.app_cert = Some("keys/sandbox/alipay_app_cert.pem".into());
        direct.alipay.alipay_cert = Some("keys/sandbox/alipay_platform_cert.pem".into());
        let half = refusal(&direct);
        assert!(half.contains("alipay.alipay_root_cert missing"), "{half}");
        direct.alipay.alipay_root_cert = Some("keys/sandbox/alipay_root_cert.pem".into());
        assert_eq!(refusal(&direct), "", "certificate mode");
        direct.alipay.app_cert = None;
        direct.alipay.alipay_cert = None;
        let one = refusal(&direct);
        assert!(
            one.contains("alipay.app_cert and alipay.alipay_cert missing"),
            "{one}"
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
