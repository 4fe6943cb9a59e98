//! Building the application state and running the server; shared by `main` and the tests.

use crate::assets::{self, AssetError, StaticFiles};
use crate::config::{ApiVersion, Cashier, Config, PayMode};
use crate::db::{self, Db, Pool};
use crate::payment::alipay::{Alipay, AlipayConnector, CertSn};
use crate::payment::pingpp::connector::PingppConnector;
use crate::payment::pingpp::sign::{RsaPrivateKey, RsaPublicKey};
use crate::payment::pingpp::{sign as pp_sign, Pingpp};
use crate::payment::wechat::connector::WechatV2;
use crate::payment::wechat::shipping::MiniProgramApi;
use crate::payment::wechat::{SignType, WxPay};
use crate::payment::wechat_v3::connector::WechatV3;
use crate::payment::wechat_v3::{ApiV3Key, CertificateSet, Merchant, Verifier, WxPayV3};
use crate::payment::x509;
use crate::sandbox::Sandbox;
use crate::services::gateway::Gateway;
use crate::services::notify::{AlipayApp, PingppApp, WechatMerchant, WechatV3Merchant};
use actix_web::cookie::Key;
use actix_web::dev::Server;
use actix_web::{middleware, web, App, HttpServer};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

/// Everything a request may need; cheap to clone (all shared).
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub pool: Pool,
    pub db: Db,
    pub tera: Arc<tera::Tera>,
    /// The static files (embedded, with `assets_dir`'s on top), served from memory.
    pub static_files: Arc<StaticFiles>,
    pub http: reqwest::Client,
    pub cookie_key: Key,
    /// Where the shop is reached from outside, without a trailing slash.
    pub public_url: String,
    /// The "Ping++ 公钥" that signs webhooks.
    pub pingpp_public_key: RsaPublicKey,
    /// Signs requests to Ping++ when configured.
    pub merchant_key: Option<RsaPrivateKey>,
    /// Carries the WeChat merchant certificate for `secapi` (refunds), when configured.
    pub wechat_cert_http: Option<reqwest::Client>,
    /// WeChat Pay APIv3, when configured.
    pub wechat_v3: Option<WechatV3Setup>,
    /// Alipay direct's keys (`cashier = "direct"`).
    pub alipay: Option<AlipayKeys>,
    /// QR codes rendered once per content (a pay page's QR never changes).
    pub qr_cache: Arc<std::sync::Mutex<std::collections::HashMap<String, Arc<str>>>>,
    /// This app's Prometheus series (`/metrics`).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The sandbox platforms (sandbox mode only; set by `run`, which knows the URL).
    pub sandbox: Option<Arc<Sandbox>>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{0}")]
    Db(String),
    #[error("templates: {0}")]
    Templates(#[from] tera::Error),
    #[error("http client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("session secret: {0}")]
    Secret(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("key {0}: {1}")]
    Key(String, String),
    /// A certificate file (setting and path) that cannot be read or used.
    #[error("certificate {0}: {1}")]
    Certificate(String, String),
    #[error("{0}")]
    Assets(#[from] AssetError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

fn read_key(path: &str) -> Result<String, StartupError> {
    assets::read_key(path).map_err(|e| StartupError::Key(path.into(), e.to_string()))
}

impl AppState {
    /// Where the sandbox answers (sandbox mode).
    pub fn sandbox_url(&self) -> String {
        self.config
            .sandbox
            .url
            .clone()
            .unwrap_or_else(|| format!("{}/sandbox", self.public_url))
            .trim_end_matches('/')
            .to_string()
    }

    fn platform_base(&self, configured: &Option<String>, sandbox_path: &str, live: &str) -> String {
        match (configured, self.config.pay_mode) {
            (Some(base), _) => base.clone(),
            (None, PayMode::Sandbox) => format!("{}{sandbox_path}", self.sandbox_url()),
            (None, PayMode::Live) => live.into(),
        }
    }

    /// The clients of both platforms and the URLs they call back.
    pub fn gateway(&self) -> Gateway {
        let wx = &self.config.wechat;
        let pp = &self.config.pingpp;
        let wx_pay = WxPay {
            http: self.http.clone(),
            base: self.platform_base(&wx.pay_base, "/wxpay", "https://api.mch.weixin.qq.com"),
            appid: wx.appid.clone(),
            mch_id: wx.mch_id.clone(),
            key: wx.api_key.clone(),
            sign_type: SignType::Md5,
            cert_http: self.wechat_cert_http.clone(),
        };
        Gateway {
            db: self.db.clone(),
            wechat: WechatV2 {
                oa: WxPay {
                    appid: wx.oa_appid.clone(),
                    ..wx_pay.clone()
                },
                pay: wx_pay,
                notify_url: format!("{}/api/v1/pay/notify", self.public_url),
                refund_notify_url: format!("{}/api/v1/pay/refund_notify", self.public_url),
                server_ip: self.config.server_ipv4().to_string(),
            },
            pingpp: PingppConnector {
                client: Pingpp {
                    http: self.http.clone(),
                    base: self.platform_base(&pp.api_base, "/pingpp", "https://api.pingxx.com"),
                    secret_key: pp.secret_key.clone(),
                    merchant_key: self.merchant_key.clone(),
                },
                app_id: pp.app_id.clone(),
                livemode: self.config.pay_mode == PayMode::Live,
            },
            wechat_v3: self.wechat_v3.as_ref().map(|v3| WechatV3 {
                client: WxPayV3::new(
                    self.http.clone(),
                    &self.wechat_v3_base(),
                    Duration::from_secs(self.config.platform_timeout_seconds),
                    v3.merchant.clone(),
                    Verifier::certificates(CertificateSet::default()),
                    Arc::new(chrono::Utc::now),
                )
                .sharing(v3.verifier.clone()),
                appid: wx.appid.clone(),
                oa_appid: wx.oa_appid.clone(),
                notify_url: format!("{}/api/v1/pay/v3/notify", self.public_url),
            }),
            alipay: self.alipay.as_ref().map(|k| AlipayConnector {
                client: Alipay {
                    http: self.http.clone(),
                    gateway: self.alipay_gateway(),
                    app_id: self.config.alipay.app_id.clone(),
                    key: k.app_key.clone(),
                    alipay_key: k.alipay_key.clone(),
                    cert: k.cert.clone(),
                    timeout: Duration::from_secs(self.config.platform_timeout_seconds),
                },
                seller_id: self.config.alipay.seller_id.clone(),
                notify_url: format!("{}/home/notify/alipay", self.public_url),
                return_to: format!("{}/home/order/payresult?order_sn=", self.public_url),
            }),
            cashier: self.config.cashier,
            v3_memory: self
                .wechat_v3
                .as_ref()
                .map(|v3| v3.memory.clone())
                .unwrap_or_default(),
            v3_certificate_mode: self
                .wechat_v3
                .as_ref()
                .is_some_and(|v3| v3.certificate_mode),
            wechat_version: wx.api_version,
            mini: MiniProgramApi {
                http: self.http.clone(),
                base: self.wechat_login_base(),
                appid: wx.appid.clone(),
                secret: wx.app_secret.clone(),
            },
            metrics: self.metrics.clone(),
        }
    }

    /// The merchant WeChat Pay APIv3 notifications must be for (None: v3 not configured).
    pub fn wechat_v3_merchant(&self) -> Option<WechatV3Merchant> {
        self.wechat_v3.as_ref().map(|_| WechatV3Merchant {
            appid: self.config.wechat.appid.clone(),
            oa_appid: self.config.wechat.oa_appid.clone(),
            mchid: self.config.wechat.mch_id.clone(),
        })
    }

    /// The Alipay app notifications must be for (None: Alipay direct not configured).
    pub fn alipay_app(&self) -> Option<AlipayApp> {
        self.alipay.as_ref().map(|k| AlipayApp {
            app_id: self.config.alipay.app_id.clone(),
            seller_id: self.config.alipay.seller_id.clone(),
            public_key: k.alipay_key.clone(),
        })
    }

    pub fn wechat_merchant(&self) -> WechatMerchant {
        let wx = &self.config.wechat;
        WechatMerchant {
            appid: wx.appid.clone(),
            oa_appid: wx.oa_appid.clone(),
            mch_id: wx.mch_id.clone(),
            key: wx.api_key.clone(),
        }
    }

    pub fn pingpp_app(&self) -> PingppApp {
        PingppApp {
            app_id: self.config.pingpp.app_id.clone(),
            public_key: self.pingpp_public_key.clone(),
            livemode: self.config.pay_mode == PayMode::Live,
        }
    }

    /// The base URL of WeChat Pay APIv3 (`{base}/v3/pay/transactions/…`): `wechat.v3_base`,
    /// else the sandbox's `…/sandbox/wxpay` in sandbox mode, else `api.mch.weixin.qq.com`.
    pub fn wechat_v3_base(&self) -> String {
        let configured = &self.config.wechat.v3_base;
        self.platform_base(configured, "/wxpay", "https://api.mch.weixin.qq.com")
    }

    /// The Alipay gateway (`…/gateway.do`): `alipay.gateway`, else the sandbox's
    /// `…/sandbox/alipay/gateway.do` in sandbox mode, else `openapi.alipay.com`.
    pub fn alipay_gateway(&self) -> String {
        let configured = &self.config.alipay.gateway;
        self.platform_base(
            configured,
            "/alipay/gateway.do",
            "https://openapi.alipay.com/gateway.do",
        )
    }

    /// The base of the Official Account's web OAuth (`…/connect/oauth2/authorize`): the
    /// sandbox's own in sandbox mode.
    pub fn wechat_oauth_base(&self) -> String {
        let configured = &self.config.wechat.oauth_base;
        self.platform_base(configured, "/wechat", "https://open.weixin.qq.com")
    }

    /// The base URL of `sns/jscode2session`: the sandbox's own in sandbox mode.
    pub fn wechat_login_base(&self) -> String {
        match (&self.config.wechat.login_base, self.config.pay_mode) {
            (Some(base), _) => base.clone(),
            (None, PayMode::Sandbox) => format!("{}/wxapi", self.sandbox_url()),
            (None, PayMode::Live) => "https://api.weixin.qq.com".into(),
        }
    }
}

fn session_key(config: &Config) -> Result<Key, StartupError> {
    let bytes = match &config.session_secret {
        Some(hex_secret) => {
            hex::decode(hex_secret).map_err(|e| StartupError::Secret(e.to_string()))?
        }
        None => {
            // Sandbox convenience: one secret per checkout, kept beside the SQLite file.
            let path = std::path::Path::new("data/session.key");
            match std::fs::read_to_string(path) {
                Ok(s) => hex::decode(s.trim()).map_err(|e| StartupError::Secret(e.to_string()))?,
                Err(_) => {
                    let key = Key::generate();
                    std::fs::create_dir_all("data")?;
                    std::fs::write(path, hex::encode(key.master()))?;
                    key.master().to_vec()
                }
            }
        }
    };
    Key::try_from(bytes.as_slice()).map_err(|e| StartupError::Secret(e.to_string()))
}

/// What startup reads and checks before it writes anything.
struct Prepared {
    tera: tera::Tera,
    static_files: StaticFiles,
    http: reqwest::Client,
    pingpp_public_key: RsaPublicKey,
    merchant_key: Option<RsaPrivateKey>,
    wechat_cert_http: Option<reqwest::Client>,
    wechat_v3: Option<WechatV3Setup>,
    alipay: Option<AlipayKeys>,
}

/// Alipay direct's keys, read and checked at start (`cashier = "direct"` only).
#[derive(Clone)]
pub struct AlipayKeys {
    /// The app's private key: signs every request.
    pub app_key: RsaPrivateKey,
    /// Alipay's public key: verifies answers and notifications. In certificate mode the
    /// key of `alipay.alipay_cert` (`alipay.alipay_public_key` is not read).
    pub alipay_key: RsaPublicKey,
    /// Certificate mode's SNs (all three certificates configured).
    pub cert: Option<CertSn>,
}

fn alipay_keys(config: &Config) -> Result<AlipayKeys, StartupError> {
    let a = &config.alipay;
    let app_key = pp_sign::private_key(&read_key(&a.app_private_key)?)
        .map_err(|e| StartupError::Key(a.app_private_key.clone(), e.to_string()))?;
    let (alipay_key, cert) = match (&a.app_cert, &a.alipay_cert, &a.alipay_root_cert) {
        (Some(app), Some(alipay), Some(root)) => {
            let sn = |setting: &str, path: &str| certificate(setting, path, x509::alipay_cert_sn);
            let cert = CertSn {
                app_cert_sn: sn("alipay.app_cert", app)?,
                alipay_root_cert_sn: certificate(
                    "alipay.alipay_root_cert",
                    root,
                    x509::alipay_root_cert_sn,
                )?,
                alipay_cert_sn: sn("alipay.alipay_cert", alipay)?,
            };
            let key = certificate("alipay.alipay_cert", alipay, |pem| {
                pp_sign::certificate(pem).map(|(_, key)| key)
            })?;
            (key, Some(cert))
        }
        // Public-key mode (config validation refuses one or two certificates).
        _ => {
            let key = pp_sign::public_key(&read_key(&a.alipay_public_key)?)
                .map_err(|e| StartupError::Key(a.alipay_public_key.clone(), e.to_string()))?;
            (key, None)
        }
    };
    Ok(AlipayKeys {
        app_key,
        alipay_key,
        cert,
    })
}

/// What `read` takes from the certificate file `setting` names; the setting and the file
/// are named when it cannot be read or is not a usable certificate.
fn certificate<T>(
    setting: &str,
    path: &str,
    read: impl Fn(&str) -> Result<T, pp_sign::KeyError>,
) -> Result<T, StartupError> {
    let named = |e: String| StartupError::Certificate(format!("{setting} ({path})"), e);
    let pem = assets::read_key(path).map_err(|e| named(e.to_string()))?;
    read(&pem).map_err(|e| named(e.to_string()))
}

/// WeChat Pay APIv3 as configured (`wechat.api_version = "v3"`): the merchant's credentials
/// and the one verifier every client of the process shares (its platform certificates are
/// refreshed once for all, and stored in the database for the other instances).
#[derive(Clone)]
pub struct WechatV3Setup {
    pub merchant: Merchant,
    pub verifier: Arc<std::sync::RwLock<Verifier>>,
    /// Platform-certificate mode (no WeChat Pay public key configured).
    pub certificate_mode: bool,
    /// What the process remembers about its platform certificates.
    pub memory: Arc<crate::services::gateway::CertificateMemory>,
}

/// The merchant's APIv3 key, private key and verification mode, read and checked at start.
fn wechat_v3_setup(config: &Config) -> Result<WechatV3Setup, StartupError> {
    let wx = &config.wechat;
    let private_key = pp_sign::private_key(&read_key(&wx.v3_private_key)?)
        .map_err(|e| StartupError::Key(wx.v3_private_key.clone(), e.to_string()))?;
    let api_v3_key = ApiV3Key::new(&wx.apiv3_key)
        .map_err(|e| StartupError::Key("wechat.apiv3_key".into(), e.to_string()))?;
    let verifier = match (&wx.v3_public_key_id, &wx.v3_public_key) {
        (Some(id), Some(path)) => Verifier::public_key(id, &read_key(path)?)
            .map_err(|e| StartupError::Key(path.clone(), e.to_string()))?,
        _ => Verifier::certificates(CertificateSet::default()),
    };
    Ok(WechatV3Setup {
        merchant: Merchant {
            mchid: wx.mch_id.clone(),
            serial_no: wx.v3_cert_serial.clone(),
            private_key,
            api_v3_key,
        },
        verifier: Arc::new(std::sync::RwLock::new(verifier)),
        certificate_mode: wx.v3_public_key.is_none(),
        memory: Arc::default(),
    })
}

/// Loads templates, static files and keys and builds the HTTP clients; writes nothing.
fn prepare(config: &Config) -> Result<Prepared, StartupError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let assets_dir = config.assets_dir.as_deref().map(std::path::Path::new);
    let tera = assets::templates(assets_dir)?;
    let static_files = StaticFiles::load(assets_dir)?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(config.platform_timeout_seconds))
        .connect_timeout(Duration::from_secs(5))
        .build()?;
    let pingpp_public_key = pp_sign::public_key(&read_key(&config.pingpp.webhook_public_key)?)
        .map_err(|e| StartupError::Key(config.pingpp.webhook_public_key.clone(), e.to_string()))?;
    let wechat_cert_http = match &config.wechat.client_cert_pem {
        Some(path) => {
            let pem =
                std::fs::read(path).map_err(|e| StartupError::Key(path.clone(), e.to_string()))?;
            let identity = reqwest::Identity::from_pem(&pem)?;
            Some(
                reqwest::Client::builder()
                    .identity(identity)
                    .timeout(Duration::from_secs(config.platform_timeout_seconds))
                    .build()?,
            )
        }
        None => None,
    };
    let merchant_key = match &config.pingpp.merchant_private_key {
        Some(path) => Some(
            pp_sign::private_key(&read_key(path)?)
                .map_err(|e| StartupError::Key(path.clone(), e.to_string()))?,
        ),
        None => None,
    };
    if config.pay_mode == PayMode::Sandbox {
        sandbox_keys(config)?;
        crate::sandbox::alipay::Platform::load(config)
            .map_err(|(path, e)| StartupError::Key(path, e))?;
    }
    let wechat_v3 = match config.wechat.api_version {
        ApiVersion::V3 => Some(wechat_v3_setup(config)?),
        ApiVersion::V2 => None,
    };
    let alipay = match config.cashier {
        Cashier::Direct => Some(alipay_keys(config)?),
        Cashier::Pingpp => None,
    };
    Ok(Prepared {
        tera,
        static_files,
        http,
        pingpp_public_key,
        merchant_key,
        wechat_cert_http,
        wechat_v3,
        alipay,
    })
}

/// Everything `build_state` checks short of the database: templates, static files, keys.
pub fn check(config: &Config) -> Result<(), StartupError> {
    prepare(config).map(|_| ())
}

/// Connects the pool, applies migrations, loads templates and builds the HTTP client.
/// Everything that can fail without writing (templates, static files, keys, clients) comes
/// first: a configuration that cannot work creates no file and migrates nothing.
pub fn build_state(config: Config) -> Result<AppState, StartupError> {
    let prepared = prepare(&config)?;
    // Only now: the database file, the migrations, the session key file.
    let pool = db::connect(&config.database_url, config.db_pool_size).map_err(StartupError::Db)?;
    let mut conn = pool.get().map_err(|e| StartupError::Db(e.to_string()))?;
    let applied = db::migrate(&mut conn).map_err(StartupError::Db)?;
    if applied > 0 {
        log::info!("applied {applied} migration(s)");
    }
    drop(conn);
    let cookie_key = session_key(&config)?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.bind))
        .trim_end_matches('/')
        .to_string();
    Ok(AppState {
        config: Arc::new(config),
        db: Db::new(pool.clone()),
        pool,
        tera: Arc::new(prepared.tera),
        static_files: Arc::new(prepared.static_files),
        http: prepared.http,
        cookie_key,
        public_url,
        pingpp_public_key: prepared.pingpp_public_key,
        merchant_key: prepared.merchant_key,
        wechat_cert_http: prepared.wechat_cert_http,
        wechat_v3: prepared.wechat_v3,
        alipay: prepared.alipay,
        qr_cache: Arc::default(),
        metrics: Arc::new(crate::metrics::Metrics::new()?),
        sandbox: None,
    })
}

/// The access log's request line, with the value of every `secret` query parameter hidden:
/// the sandbox serves `sns/jscode2session`, whose query carries the AppSecret.
fn request_line(req: &actix_web::dev::ServiceRequest) -> String {
    let query = req
        .query_string()
        .split('&')
        .map(|pair| match pair.split_once('=') {
            // An AppSecret; a single-use OAuth code is a credential for its five minutes.
            Some((k, _)) if k.eq_ignore_ascii_case("secret") || k == "code" => {
                format!("{k}=<redacted>")
            }
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&");
    let sep = if query.is_empty() { "" } else { "?" };
    format!(
        "{} {}{sep}{query} {:?}",
        req.method(),
        req.path(),
        req.version()
    )
}

/// The sandbox's keys: the one it signs webhooks with, and the merchant public key it checks
/// requests with, when configured.
fn sandbox_keys(config: &Config) -> Result<(RsaPrivateKey, Option<RsaPublicKey>), StartupError> {
    let sb = &config.sandbox;
    let platform_key = pp_sign::private_key(&read_key(&sb.pingpp_private_key)?)
        .map_err(|e| StartupError::Key(sb.pingpp_private_key.clone(), e.to_string()))?;
    let merchant_public = match &sb.merchant_public_key {
        Some(path) => Some(
            pp_sign::public_key(&read_key(path)?)
                .map_err(|e| StartupError::Key(path.clone(), e.to_string()))?,
        ),
        None => None,
    };
    Ok((platform_key, merchant_public))
}

/// Runs the server on `listener`, its background jobs detached (they end with the runtime).
/// When no public URL was configured it becomes the listener's own address (so port 0 works
/// in tests).
pub fn run(listener: TcpListener, state: AppState) -> Result<Server, StartupError> {
    let (server, jobs) = run_with_jobs(listener, state)?;
    if let Some(jobs) = jobs {
        jobs.detach();
    }
    Ok(server)
}

/// Runs the server and returns the job loop too, for a graceful stop: once the server has
/// finished its in-flight requests (SIGTERM, within `shutdown_grace_seconds`), stop the jobs.
pub fn run_with_jobs(
    listener: TcpListener,
    mut state: AppState,
) -> Result<(Server, Option<crate::jobs::Jobs>), StartupError> {
    if state.config.public_url.is_none() {
        state.public_url = format!("http://{}", listener.local_addr()?);
    }
    if state.config.pay_mode == PayMode::Sandbox {
        let (platform_key, merchant_public) = sandbox_keys(&state.config)?;
        let platforms = crate::sandbox::Platforms {
            v3: crate::sandbox::wxpay_v3::Platform::load(&state.config)
                .map_err(|(path, e)| StartupError::Key(path, e))?,
            alipay: crate::sandbox::alipay::Platform::load(&state.config)
                .map_err(|(path, e)| StartupError::Key(path, e))?,
        };
        state.sandbox = Some(Sandbox::new(
            &state.config,
            format!("{}/sandbox", state.public_url),
            &state.public_url,
            platform_key,
            merchant_public,
            platforms,
            state.http.clone(),
        ));
    }
    let jobs = crate::jobs::spawn(&state);
    let mode = state.config.pay_mode;
    let metrics = state.config.metrics;
    let grace = state.config.shutdown_grace_seconds;
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .wrap(
                middleware::Logger::new("%a \"%{request}xi\" %s %b %Dms id=%{x-request-id}i")
                    .custom_request_replace("request", request_line),
            )
            .wrap(middleware::Compress::default())
            .wrap(middleware::from_fn(crate::controllers::ops::observe))
            // Outermost: the id exists before the access log reads it.
            .wrap(middleware::from_fn(crate::controllers::ops::request_id))
            .configure(|cfg| crate::routes::configure(cfg, mode, metrics))
    })
    // Small responses (a 2 KB file, a JSON status) go out at once instead of waiting for
    // the peer's delayed ACK (Nagle: 40 ms stalls).
    .on_connect(|conn, _| {
        if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
            if let Err(e) = tcp.set_nodelay(true) {
                log::debug!("set_nodelay: {e}");
            }
        }
    })
    // SIGTERM, SIGINT: stop accepting, let in-flight requests finish within the grace.
    .shutdown_timeout(grace)
    .listen(listener)?
    .run();
    Ok((server, jobs))
}
