//! The `jiesuan` command: `serve` (the default), `migrate`, `create-admin`,
//! `reset-admin-password`, `backup`, `check-config`, `reconcile`.

use jiesuan::config::Config;
use jiesuan::services::{account, seed, ServiceError};
use jiesuan::startup::{build_state, run_with_jobs, AppState};
use jiesuan::validators::{check_password, AccountForm};
use std::net::TcpListener;
use std::process::ExitCode;

const USAGE: &str = "usage: jiesuan [COMMAND]

commands:
  serve                                    run the shop (the default)
  migrate                                  apply the database migrations and exit
  create-admin <username> <password>       add an admin
  reset-admin-password <username> <password>
                                           set an admin's password and end its sessions
  backup <file>                            copy the SQLite database to <file>, safe while
                                           the shop runs (MariaDB: mysqldump; PostgreSQL: pg_dump)
  check-config                             validate the configuration, print it (secrets
                                           redacted) and exit 0, or 1 when it is invalid
  reconcile [--date YYYY-MM-DD] [--provider NAME]
                                           compare the platforms' bills of a Beijing day
                                           (default yesterday) with the shop's payments and
                                           refunds; prints each difference
  help, --help, -h                         this text

Configuration: jiesuan.toml in the working directory (or the file JIESUAN_CONFIG names),
then DATABASE_URL and JIESUAN_* environment variables; see the README.";

fn main() -> ExitCode {
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
    if let Some("help" | "--help" | "-h") = args.first().map(String::as_str) {
        println!("{USAGE}");
        return Ok(());
    }
    let config = Config::load().map_err(|e| e.to_string())?;
    jiesuan::logging::init(config.log_format);
    match args.first().map(String::as_str) {
        None | Some("serve") => serve(config),
        Some("check-config") => {
            // Templates and keys too: what `serve` would refuse, without writing anything.
            jiesuan::startup::check(&config).map_err(|e| e.to_string())?;
            println!("{config:#?}");
            println!("configuration is valid");
            Ok(())
        }
        Some("backup") => {
            let Some(file) = args.get(1) else {
                return Err(USAGE.into());
            };
            jiesuan::db::backup(&config.database_url, std::path::Path::new(file))?;
            println!("database copied to {file}");
            Ok(())
        }
        Some("migrate") => build_state(config).map(|_| ()).map_err(|e| e.to_string()),
        Some("create-admin") => {
            let (Some(username), Some(password)) = (args.get(1), args.get(2)) else {
                return Err(USAGE.into());
            };
            // The shop's registration rules: a 3–32 character name, an 8–72 byte password.
            let cred = AccountForm {
                username: username.clone(),
                password: password.clone(),
                password2: Some(password.clone()),
                next: String::new(),
            }
            .register()
            .map_err(|errors| errors.into_values().collect::<Vec<_>>().join("；"))?;
            let state = build_state(config).map_err(|e| e.to_string())?;
            with_conn(&state, |c| {
                account::register(c, &cred, jiesuan::domain::Scope::Admin)
            })?;
            println!("admin {} created", cred.username);
            Ok(())
        }
        Some("reset-admin-password") => {
            let (Some(username), Some(password)) = (args.get(1), args.get(2)) else {
                return Err(USAGE.into());
            };
            check_password(password)?;
            let state = build_state(config).map_err(|e| e.to_string())?;
            with_conn(&state, |c| {
                account::reset_admin_password(c, username, password)
            })?;
            println!("password of admin {username} reset; its sessions have ended");
            Ok(())
        }
        Some("reconcile") => reconcile(config, &args[1..]),
        Some(_) => Err(USAGE.into()),
    }
}

/// The value after `flag` in `args`, if given.
fn flag<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let i = args.iter().position(|a| a == flag)?;
    args.get(i + 1).map(String::as_str)
}

/// `jiesuan reconcile [--date YYYY-MM-DD] [--provider NAME]`.
fn reconcile(config: Config, args: &[String]) -> Result<(), String> {
    let yesterday = jiesuan::domain::today_shanghai() - chrono::Duration::days(1);
    let day = match flag(args, "--date") {
        None => yesterday,
        Some(d) => chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_err(|_| format!("--date {d}: expected YYYY-MM-DD"))?,
    };
    let only = match flag(args, "--provider") {
        None => None,
        Some(p) => Some(
            jiesuan::domain::Provider::parse(p)
                .ok_or_else(|| format!("--provider {p}: unknown"))?,
        ),
    };
    let state = build_state(config).map_err(|e| e.to_string())?;
    let holder = format!("cli-{}", std::process::id());
    actix_web::rt::System::new().block_on(async move {
        let gateway = state.gateway();
        let providers = match only {
            Some(p) => vec![p],
            None => gateway.billed_providers(),
        };
        for provider in providers {
            let outcome = gateway
                .reconcile(day, provider, &holder)
                .await
                .map_err(|e| format!("{provider}: {e}"))?;
            let Some(o) = outcome else {
                println!("{provider} {day}: another instance is reconciling this day");
                continue;
            };
            let r = &o.run;
            println!(
                "{provider} {day}: {} — {} payment(s) {}, {} refund(s) {}, fees {}, {} difference(s){}",
                r.status,
                r.payments,
                jiesuan::domain::Money::from_fen(r.payment_total),
                r.refunds,
                jiesuan::domain::Money::from_fen(r.refund_total),
                jiesuan::services::reconcile::fee_text(r.fee_e5),
                r.differences,
                r.error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default()
            );
            for d in &o.differences {
                println!(
                    "  {} {} {}: shop {} / platform {}",
                    d.kind.as_str(),
                    d.out_trade_no.as_deref().unwrap_or("-"),
                    d.out_refund_no.as_deref().unwrap_or(""),
                    d.shop,
                    d.platform
                );
            }
        }
        Ok(())
    })
}

/// Runs a service on a pooled connection; field errors read as their messages.
fn with_conn<T>(
    state: &AppState,
    f: impl FnOnce(&mut jiesuan::db::Conn) -> Result<T, ServiceError>,
) -> Result<T, String> {
    let mut conn = state.pool.get().map_err(|e| e.to_string())?;
    f(&mut conn).map_err(|e| match e {
        ServiceError::Invalid(errors) => errors.into_values().collect::<Vec<_>>().join("；"),
        other => other.to_string(),
    })
}

fn serve(config: Config) -> Result<(), String> {
    let seed_demo = config.seed_demo_data;
    let bind = config.bind.clone();
    // The address first: a port in use stops the start before anything is written.
    let listener = TcpListener::bind(&bind).map_err(|e| format!("cannot listen on {bind}: {e}"))?;
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
    log::info!(
        "jiesuan listening on http://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    let grace = std::time::Duration::from_secs(state.config.shutdown_grace_seconds);
    actix_web::rt::System::new().block_on(async move {
        let (server, jobs) = run_with_jobs(listener, state).map_err(|e| e.to_string())?;
        let served = server.await.map_err(|e| e.to_string());
        if let Some(jobs) = jobs {
            jobs.stop(grace).await;
        }
        log::info!("jiesuan stopped");
        served
    })
}
