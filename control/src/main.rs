//! `likeness-control`: the control plane's server and admin CLI.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use likeness_control::audit::Who;
use likeness_control::config::{Config, LogFormat};
use likeness_control::error::ControlError;
use likeness_control::roles::Role;
use likeness_control::service::{tenants, users};
use likeness_control::{Deps, db};

#[derive(Parser)]
#[command(
    name = "likeness-control",
    version,
    about = "The Likeness control plane"
)]
struct Cli {
    /// TOML configuration file (environment overrides: LIKENESS_CONTROL__SECTION__KEY).
    #[arg(long, short, global = true, env = "LIKENESS_CONTROL_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs the HTTP API (migrating first unless database.migrate_on_start = false). Once bound
    /// it prints one line on stdout, `{"listening":{"http":"ADDR"}}` (server.http_addr may
    /// use port 0: the line gives the real port); logs go to stderr.
    Serve,
    /// Applies pending database migrations.
    Migrate,
    /// Validates the configuration and prints the effective values.
    CheckConfig,
    /// Creates a tenant (if it does not exist) and an admin user in it. The password is read
    /// from LIKENESS_ADMIN_PASSWORD or, if unset, from the first line of stdin.
    CreateAdmin {
        /// Tenant slug (a-z, 0-9, '-').
        #[arg(long)]
        tenant: String,
        /// Tenant display name when it is created (default: the slug).
        #[arg(long)]
        tenant_name: Option<String>,
        /// The admin's e-mail.
        #[arg(long)]
        email: String,
    },
    /// Re-matches a tenant's archive against the matcher (a resumable bulk job): starts a run,
    /// or resumes one, and works it in this process with a progress bar (done / total, rate,
    /// ETA). Human decisions (confirmed, rejected, hand-drawn faces) are never overwritten.
    /// Stopping it (Ctrl-C) leaves the run resumable with --resume or by any `serve`.
    Rematch {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// Only report what would change.
        #[arg(long)]
        dry_run: bool,
        /// Only these assets (repeatable).
        #[arg(long = "asset")]
        assets: Vec<String>,
        /// Only assets created at or after this UTC time (YYYY-MM-DDTHH:MM:SS).
        #[arg(long)]
        created_from: Option<chrono::NaiveDateTime>,
        /// Only assets created before this UTC time (YYYY-MM-DDTHH:MM:SS).
        #[arg(long)]
        created_to: Option<chrono::NaiveDateTime>,
        /// Resume this run instead of starting one.
        #[arg(long)]
        resume: Option<String>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        cmd: AuditCmd,
    },
    /// Verifies a consent receipt (the JSON of `/receipt/{token}/receipt.json`) offline against
    /// the published public keys: prints `valid: ...` and exits 0, or names what failed
    /// (hash mismatch, bad signature, unknown key, malformed) and exits 1. Needs no
    /// configuration or database.
    VerifyReceipt {
        /// The receipt file (`-` for stdin).
        receipt: PathBuf,
        /// The public keys: a file holding the answer of `GET /api/v1/evidence/keys` (or a bare
        /// array of keys), or that endpoint's http(s) URL.
        #[arg(long)]
        keys: String,
    },
    /// Sealed consent evidence.
    Evidence {
        #[command(subcommand)]
        cmd: EvidenceCmd,
    },
}

#[derive(Subcommand)]
enum EvidenceCmd {
    /// Checks a tenant's evidence chain (each record's hash and signature, seq without gaps,
    /// links to the previous record); exits 1 at the first broken record.
    VerifyChain {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Checks the whole hash chain; exits 1 if any entry was edited, reordered or removed.
    Verify,
}

fn init_logging(cfg: &Config) {
    let format = match cfg.log.format {
        LogFormat::Json => likeness_common::logging::LogFormat::Json,
        LogFormat::Text => likeness_common::logging::LogFormat::Text,
    };
    likeness_common::logging::init(&cfg.log.filter, format);
}

fn read_password() -> Result<String, ControlError> {
    if let Ok(p) = std::env::var("LIKENESS_ADMIN_PASSWORD") {
        return Ok(p);
    }
    use std::io::IsTerminal;
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        // Interactive: prompt (on stderr) and take the line typed, up to Enter.
        eprint!("Password for the new admin (then Enter): ");
    }
    let mut s = String::new();
    stdin
        .read_line(&mut s)
        .map_err(|e| ControlError::invalid("password", format!("cannot read stdin: {e}")))?;
    let line = s.trim_end_matches(['\r', '\n']).to_string();
    if line.is_empty() {
        return Err(ControlError::invalid(
            "password",
            "give it in LIKENESS_ADMIN_PASSWORD or on stdin",
        ));
    }
    Ok(line)
}

/// `verify-receipt`: 0 valid, 1 not valid (named), 2 unusable input.
fn verify_receipt(receipt: &std::path::Path, keys: &str) -> Result<ExitCode, ControlError> {
    use likeness_control::service::evidence;
    use likeness_control_domain::evidence as domain;
    let text = if receipt.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| ControlError::invalid("receipt", format!("cannot read stdin: {e}")))?;
        s
    } else {
        std::fs::read_to_string(receipt).map_err(|e| {
            ControlError::invalid("receipt", format!("cannot read {}: {e}", receipt.display()))
        })?
    };
    let keys = actix_web::rt::System::new().block_on(evidence::load_keys(keys))?;
    let result = domain::parse_receipt(&text).and_then(|r| {
        domain::verify_receipt(&r, &keys)?;
        Ok(r)
    });
    #[allow(clippy::print_stdout)]
    match result {
        Ok(r) => {
            let at = r
                .record
                .get("signed_at")
                .or_else(|| r.record.get("sealed_at"))
                .and_then(|v| v.as_str())
                .unwrap_or("?");
            println!(
                "valid: record sha256 {}, key {}, signed at {at}",
                r.record_sha256, r.key_id
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("NOT VALID ({}): {e}", e.code());
            Ok(ExitCode::from(1))
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, ControlError> {
    if let Cmd::VerifyReceipt { receipt, keys } = &cli.cmd {
        return verify_receipt(receipt, keys);
    }
    let cfg = Config::load(cli.config.as_deref())?;
    match cli.cmd {
        Cmd::VerifyReceipt { receipt, keys } => verify_receipt(&receipt, &keys),
        Cmd::Evidence {
            cmd: EvidenceCmd::VerifyChain { tenant },
        } => {
            init_logging(&cfg);
            let pool = likeness_control::service::connect_database(&cfg.database)?;
            let mut conn = pool.get()?;
            let t = tenants::by_slug(&mut conn, &tenant)?
                .ok_or_else(|| ControlError::not_found(format!("tenant {tenant}")))?;
            let report = likeness_control::service::evidence::verify_chain(&mut conn, &t.id)?;
            #[allow(clippy::print_stdout)]
            match &report.first_broken {
                None => println!(
                    "evidence chain of {tenant} intact: {} records, last seq {}",
                    report.checked, report.last_seq
                ),
                Some(b) => println!(
                    "evidence chain of {tenant} BROKEN at seq {} (evidence {}): {}",
                    b.seq, b.evidence_id, b.reason
                ),
            }
            Ok(if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Cmd::CheckConfig => {
            #[allow(clippy::print_stdout)]
            {
                println!("# configuration is valid");
                print!("{}", cfg.to_toml());
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Migrate => {
            init_logging(&cfg);
            let pool = likeness_control::service::connect_database(&cfg.database)?;
            let applied = db::migrate(&mut *pool.get()?)?;
            #[allow(clippy::print_stdout)]
            {
                println!("{} migration(s) applied", applied.len());
                for m in applied {
                    println!("  {m}");
                }
            }
            // Personal data written before the vault: sealed under the persons' keys.
            let deps = Deps::new(pool, cfg);
            let sealed = actix_web::rt::System::new().block_on(
                likeness_control::service::persons::seal_plaintext_at_start(&deps),
            )?;
            #[allow(clippy::print_stdout)]
            if sealed != Default::default() {
                println!(
                    "sealed: {} person(s), {} signing request(s), {} message(s)",
                    sealed.persons, sealed.signing_requests, sealed.messages
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::CreateAdmin {
            tenant,
            tenant_name,
            email,
        } => {
            init_logging(&cfg);
            let password = read_password()?;
            let pool = likeness_control::service::connect_database(&cfg.database)?;
            let mut conn = pool.get()?;
            db::migrate(&mut conn)?;
            let (t, u) = db::write_tx(&mut conn, |c| {
                let who = Who::system("cli", None);
                let t = match tenants::by_slug(c, &tenant)? {
                    Some(t) => t,
                    None => tenants::create(
                        c,
                        &who,
                        &tenant,
                        tenant_name.as_deref().unwrap_or(&tenant),
                    )?,
                };
                let who = Who::system("cli", Some(&t.id));
                let u = users::create(
                    c,
                    &who,
                    &t.id,
                    users::NewUser {
                        email: email.clone(),
                        role: Role::Admin,
                        display_name: None,
                        password: Some(password.clone()),
                    },
                )?;
                Ok((t, u))
            })?;
            #[allow(clippy::print_stdout)]
            {
                println!("admin {} created in tenant {} ({})", u.email, t.slug, t.id);
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Audit {
            cmd: AuditCmd::Verify,
        } => {
            init_logging(&cfg);
            let pool = likeness_control::service::connect_database(&cfg.database)?;
            let report = likeness_control::audit::verify(&mut *pool.get()?)?;
            #[allow(clippy::print_stdout)]
            {
                match &report.first_break {
                    None => println!(
                        "audit chain intact: {} entries, last seq {}",
                        report.checked, report.last_seq
                    ),
                    Some(b) => println!(
                        "audit chain BROKEN at seq {} ({}): {}",
                        b.seq,
                        serde_json::to_value(b.kind)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default(),
                        b.message
                    ),
                }
            }
            Ok(if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Cmd::Rematch {
            tenant,
            dry_run,
            assets,
            created_from,
            created_to,
            resume,
            quiet,
        } => {
            use likeness_control::service::rematch::{CliOptions, RematchFilter, run_cli};
            init_logging(&cfg);
            let pool = likeness_control::service::connect_database(&cfg.database)?;
            if cfg.database.migrate_on_start {
                db::migrate(&mut *pool.get()?)?;
            }
            let state = actix_web::web::Data::new(Deps::new(pool, cfg));
            let opts = CliOptions {
                tenant_slug: tenant,
                dry_run,
                filter: RematchFilter {
                    asset_ids: (!assets.is_empty()).then_some(assets),
                    created_from,
                    created_to,
                },
                resume,
                progress: !quiet,
            };
            let out = actix_web::rt::System::new().block_on(run_cli(&state, opts))?;
            #[allow(clippy::print_stdout)]
            {
                println!(
                    "{}",
                    serde_json::to_string(&out)
                        .map_err(|e| ControlError::Internal(format!("report: {e}")))?
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Serve => {
            init_logging(&cfg);
            let pool = likeness_control::service::connect_database(&cfg.database)?;
            if cfg.database.migrate_on_start {
                let applied = db::migrate(&mut *pool.get()?)?;
                tracing::info!(applied = applied.len(), "migrations");
            }
            let started = std::time::Instant::now();
            if db::refresh_statistics(&mut *pool.get()?, db::Statistics::Full)? {
                tracing::info!(
                    ms = started.elapsed().as_millis(),
                    "planner statistics gathered"
                );
            }
            let state = actix_web::web::Data::new(Deps::new(pool, cfg));
            actix_web::rt::System::new().block_on(async {
                // Personal data written before the vault: sealed under the persons' keys
                // before anything is served.
                likeness_control::service::persons::seal_plaintext_at_start(&state).await?;
                likeness_control::app::serve(state, announce_listening).await
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Prints `{"listening":{"http":"<first bound address>"}}` on stdout and flushes it, right after
/// binding: a supervisor or a test that configured port 0 (`server.http_addr = "127.0.0.1:0"`)
/// learns the real port without racing for a free one. Logs stay on stderr.
fn announce_listening(bound: &[std::net::SocketAddr]) {
    use std::io::Write;
    let line = serde_json::json!({
        "listening": { "http": bound.first().map(|a| a.to_string()) }
    });
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
