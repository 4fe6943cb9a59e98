//! The `jiesuan` command: `serve` (the default), `migrate`, `create-admin`.

use jiesuan::config::Config;
use jiesuan::services::{account, seed};
use jiesuan::startup::{build_state, run};
use jiesuan::validators::Credentials;
use std::net::TcpListener;
use std::process::ExitCode;

const USAGE: &str = "usage: jiesuan [serve | migrate | create-admin <username> <password>]";

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run_command(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jiesuan: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_command(args: &[String]) -> Result<(), String> {
    let config = Config::load().map_err(|e| e.to_string())?;
    match args.first().map(String::as_str) {
        None | Some("serve") => serve(config),
        Some("migrate") => build_state(config).map(|_| ()).map_err(|e| e.to_string()),
        Some("create-admin") => {
            let (Some(username), Some(password)) = (args.get(1), args.get(2)) else {
                return Err(USAGE.into());
            };
            let state = build_state(config).map_err(|e| e.to_string())?;
            let mut conn = state.pool.get().map_err(|e| e.to_string())?;
            let cred = Credentials {
                username: username.clone(),
                password: password.clone(),
            };
            account::register(&mut conn, &cred, jiesuan::domain::Scope::Admin)
                .map_err(|e| e.to_string())?;
            println!("admin {username} created");
            Ok(())
        }
        Some(_) => Err(USAGE.into()),
    }
}

fn serve(config: Config) -> Result<(), String> {
    let seed_demo = config.seed_demo_data;
    let bind = config.bind.clone();
    let state = build_state(config).map_err(|e| e.to_string())?;
    if seed_demo {
        let mut conn = state.pool.get().map_err(|e| e.to_string())?;
        let n = seed::products(&mut conn).map_err(|e| e.to_string())?;
        if n > 0 {
            log::info!("seeded {n} demo products");
        }
        if let Some(password) = seed::demo_admin(&mut conn).map_err(|e| e.to_string())? {
            println!("\n  Demo admin created (shown only this once):\n    username: admin\n    password: {password}\n");
        }
    }
    let listener = TcpListener::bind(&bind).map_err(|e| format!("cannot listen on {bind}: {e}"))?;
    log::info!(
        "jiesuan listening on http://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    actix_web::rt::System::new().block_on(async move {
        let server = run(listener, state).map_err(|e| e.to_string())?;
        server.await.map_err(|e| e.to_string())
    })
}
