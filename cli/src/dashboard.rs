//! `tidings dashboard`: serves the dashboard of a namespace (streams,
//! groups, lag, dead letters with retry and purge, a live tail, schema
//! versions) on loopback unless told otherwise.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use tidings_web::Dashboard;

use crate::ops::{self, Connection, Failure};

#[derive(Debug, Args)]
pub(crate) struct DashboardArgs {
    /// Address to listen on; port 0 picks a free one. Anything but a
    /// loopback address is reachable from other machines: a warning says so.
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// Require this token of every request: open `/?token=<token>` once in
    /// the browser, or send `Authorization: Bearer <token>`.
    #[arg(long, env = "TIDINGS_DASHBOARD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The `schemas/` folder whose versions and diffs the page shows.
    #[arg(long)]
    schemas: Option<PathBuf>,
    #[command(flatten)]
    connection: Connection,
}

pub(crate) fn run(args: DashboardArgs) -> Result<(), Failure> {
    ops::block_on(serve(args))
}

async fn serve(args: DashboardArgs) -> Result<(), Failure> {
    if let Some(dir) = &args.schemas {
        if !dir.is_dir() {
            return Err(Failure::Usage(format!(
                "--schemas {}: not a folder",
                dir.display()
            )));
        }
    }
    if args.token.as_deref() == Some("") {
        return Err(Failure::Usage("--token is empty".to_owned()));
    }
    let bus = args.connection.bus().await?;
    let mut dashboard = Dashboard::new(bus);
    if let Some(dir) = &args.schemas {
        dashboard = dashboard.schemas(dir);
    }
    if let Some(token) = &args.token {
        dashboard = dashboard.token(token);
    }
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .map_err(|e| Failure::Usage(format!("cannot listen on {}: {e}", args.bind)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Failure::Operational(e.to_string()))?;
    if !addr.ip().is_loopback() {
        eprintln!(
            "warning: the dashboard listens on {addr}, reachable from other machines; {}",
            if args.token.is_some() {
                "every request needs the token, sent in clear over plain HTTP"
            } else {
                "anyone who reaches it can retry and purge dead letters (give --token)"
            }
        );
    }
    println!("tidings dashboard on http://{addr}/");
    axum::serve(listener, dashboard.router())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| Failure::Operational(format!("the dashboard stopped: {e}")))
}
