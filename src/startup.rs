//! Building the application state and running the server; shared by `main` and the tests.

use crate::config::{Config, PayMode};
use crate::db::{self, Pool};
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
    pub tera: Arc<tera::Tera>,
    pub http: reqwest::Client,
    pub cookie_key: Key,
    /// Where the shop is reached from outside, without a trailing slash.
    pub public_url: String,
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
}

impl AppState {
    /// The base URL of `sns/jscode2session`: the sandbox's own in sandbox mode.
    pub fn wechat_login_base(&self) -> String {
        match (&self.config.wechat.login_base, self.config.pay_mode) {
            (Some(base), _) => base.clone(),
            (None, PayMode::Sandbox) => format!("{}/sandbox/wxapi", self.public_url),
            (None, PayMode::Live) => "https://api.weixin.qq.com".into(),
        }
    }
}

/// Loads the templates; a broken template stops the boot.
pub fn load_templates() -> Result<tera::Tera, tera::Error> {
    let mut tera = tera::Tera::new("templates/**/*.html")?;
    tera.autoescape_on(vec![".html"]);
    Ok(tera)
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

/// Connects the pool, applies migrations, loads templates and builds the HTTP client.
pub fn build_state(config: Config) -> Result<AppState, StartupError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pool = db::connect(&config.database_url, config.db_pool_size).map_err(StartupError::Db)?;
    let mut conn = pool.get().map_err(|e| StartupError::Db(e.to_string()))?;
    let applied = db::migrate(&mut conn).map_err(StartupError::Db)?;
    if applied > 0 {
        log::info!("applied {applied} migration(s)");
    }
    drop(conn);
    let tera = load_templates()?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        .build()?;
    let cookie_key = session_key(&config)?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.bind))
        .trim_end_matches('/')
        .to_string();
    Ok(AppState {
        config: Arc::new(config),
        pool,
        tera: Arc::new(tera),
        http,
        cookie_key,
        public_url,
    })
}

/// Runs the server on `listener`. When no public URL was configured it becomes the
/// listener's own address (so port 0 works in tests).
pub fn run(listener: TcpListener, mut state: AppState) -> Result<Server, StartupError> {
    if state.config.public_url.is_none() {
        state.public_url = format!("http://{}", listener.local_addr()?);
    }
    let mode = state.config.pay_mode;
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .wrap(middleware::Logger::new("%a \"%r\" %s %b %Dms"))
            .wrap(middleware::Compress::default())
            .configure(|cfg| crate::routes::configure(cfg, mode))
    })
    .listen(listener)?
    .run();
    Ok(server)
}
