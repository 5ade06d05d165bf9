//! The `sockdiag_exporter` binary: flags and configuration, logging, the poller, the HTTP
//! servers, and signal handling; or, with the `report` subcommand, the one-shot view.
//! Errors end here, as messages and exit codes: 78 for configuration and usage errors
//! (flags included) and an open-file limit too low to run, 1 for anything else that
//! stops the start.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use prometheus_client::registry::Registry;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use sockdiag_exporter::cli::{self, Cli, Command};
use sockdiag_exporter::collectors::CollectorKind;
use sockdiag_exporter::config::{Config, LogFormat};
use sockdiag_exporter::exit;
use sockdiag_exporter::poll as poller;
use sockdiag_exporter::web_config::{WebConfigMetrics, WebSecurity};
use sockdiag_exporter::{http, metrics, view};

/// Whether the command line, which did not parse, names the `report` subcommand: parsed
/// again, ignoring errors, as far as clap gets.
fn asks_for_report() -> bool {
    cli::command()
        .ignore_errors(true)
        .try_get_matches()
        .is_ok_and(|matches| matches.subcommand_name() == Some("report"))
}

fn main() -> ExitCode {
    let Cli { flags, command } = match cli::parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            // --help and --version are not errors. A typo in the daemon's flags is a
            // configuration error that systemd must not restart on in a loop; `report`'s
            // are a command's usage errors.
            return if !error.use_stderr() {
                ExitCode::SUCCESS
            } else if asks_for_report() {
                ExitCode::from(exit::USAGE)
            } else {
                ExitCode::from(exit::CONFIG)
            };
        }
    };
    let config = match Config::load(&flags) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("sockdiag_exporter: {errors}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    let security = match &config.web.config_file {
        Some(file) => match WebSecurity::load(file, config.web.probes_without_auth) {
            Ok(security) => Some(security),
            Err(error) => {
                eprintln!("sockdiag_exporter: invalid web config: {error}");
                return ExitCode::from(exit::CONFIG);
            }
        },
        None => None,
    };
    init_logging(&config);
    if let Some(Command::Report(args)) = command {
        return view::report::run(&args, &poller::PollerConfig::from(&config));
    }
    let nofile = raise_nofile_limit();
    if nofile < MIN_NOFILE {
        eprintln!(
            "sockdiag_exporter: the open-file limit (RLIMIT_NOFILE) is {nofile}; the exporter \
             needs at least {MIN_NOFILE} (the async runtime, the listeners, netlink sockets, \
             /proc reads and a few HTTP connections): raise it (LimitNOFILE= in the systemd \
             unit, ulimit -n, prlimit --nofile)"
        );
        return ExitCode::from(exit::CONFIG);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("sockdiag_exporter: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(run(config, security, nofile)) {
        Ok(code) => code,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "exporter stopped");
            ExitCode::FAILURE
        }
    };
    // A poll may still be running on its thread: its result is no longer wanted,
    // and waiting for it (a /proc scan on a large host) would stretch the shutdown.
    runtime.shutdown_background();
    code
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::new(format!(
        "{},sockdiag_exporter={}",
        // Dependencies log at warn at most unless the level is stricter.
        if config.log.level.as_str() == "error" {
            "error"
        } else {
            "warn"
        },
        config.log.level.as_str()
    ));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// The lowest open-file limit the daemon starts under. Below 9 the async runtime cannot
/// start; below about 20 polls and accepts fail with EMFILE and /metrics is unreachable.
/// At 32 the connection cap is 8 and polls keep 24 descriptors.
const MIN_NOFILE: u64 = 32;

/// Raises the soft file limit to the hard one (as Go programs do at start) and returns
/// the soft limit in force.
fn raise_nofile_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let limit = getrlimit(Resource::Nofile);
    let mut raised = limit;
    raised.current = limit.maximum;
    if raised.current != limit.current && setrlimit(Resource::Nofile, raised).is_ok() {
        return raised.current.unwrap_or(u64::MAX);
    }
    limit.current.unwrap_or(u64::MAX)
}

async fn run(
    config: Config,
    security: Option<WebSecurity>,
    nofile: u64,
) -> anyhow::Result<ExitCode> {
    let mut signals = Signals::new()?;
    let listeners = http::bind(&config.web.listen_addresses).await?;
    let (publish, published) = poller::channel();
    let mut live = Registry::default();
    let http_metrics = http::HttpMetrics::register(&mut live);
    let web_metrics = WebConfigMetrics::register(&mut live);
    let poll_metrics = poller::PollThreadMetrics::register(&mut live);
    let (server, limits) = server(&config, &security, nofile, published, live, http_metrics);

    let (stop, stopping) = watch::channel(false);
    if let Some(security) = &security {
        tokio::spawn(security.clone().watch(web_metrics, stopping.clone()));
    }
    let mut servers = tokio::task::JoinSet::new();
    for listener in listeners {
        let address = listener
            .local_addr()
            .context("listener without an address")?;
        tracing::info!(
            %address,
            path = %config.web.telemetry_path,
            tls = security.as_ref().is_some_and(|s| s.tls().is_some()),
            "listening"
        );
        servers.spawn(http::serve(listener, server.clone(), stopping.clone()));
    }
    let collectors_off = start_polls(&config, publish, &poll_metrics, &stopping)?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        revision = sockdiag_exporter::build_info::BuildInfo::CURRENT.revision,
        poll_interval = %humantime::format_duration(config.poll_interval),
        collectors_off = %collectors_off,
        max_connections = limits.max_connections,
        "started"
    );
    signals.until_stop(&security, &mut servers, &stop).await?;
    let _ = stop.send(true);
    Ok(signals
        .drain(&mut servers, config.web.shutdown_timeout)
        .await)
}

/// The HTTP server: the routes over the snapshot's registry and the live one, behind the
/// connection limits (lowered under a low RLIMIT_NOFILE) and the web security.
fn server(
    config: &Config,
    security: &Option<WebSecurity>,
    nofile: u64,
    published: watch::Receiver<Arc<sockdiag_exporter::snapshot::Published>>,
    live: Registry,
    http_metrics: http::HttpMetrics,
) -> (http::Server, http::Limits) {
    let mut registry = Registry::default();
    metrics::SnapshotCollector::register(&mut registry, published.clone());
    let router = http::router(
        Arc::new(registry),
        Arc::new(live),
        published,
        &config.web.telemetry_path,
        config.web.max_requests,
    );
    let limits = http::Limits {
        max_connections: http::connection_limit(config.web.max_connections, nofile),
        header_read_timeout: config.web.header_read_timeout,
        idle_timeout: config.web.idle_timeout,
    };
    if limits.max_connections < config.web.max_connections {
        tracing::warn!(
            nofile,
            configured = config.web.max_connections,
            max_connections = limits.max_connections,
            "connection limit lowered to keep file descriptors for polls"
        );
    }
    let server = http::Server::new(router, limits, http_metrics, security.clone());
    (server, limits)
}

/// Starts the main poll and, when on, the listener sampler, each on a poll thread of its
/// own; returns the collectors turned off, for the start line.
fn start_polls(
    config: &Config,
    publish: watch::Sender<Arc<sockdiag_exporter::snapshot::Published>>,
    metrics: &poller::PollThreadMetrics,
    stopping: &watch::Receiver<bool>,
) -> anyhow::Result<String> {
    let peaks = poller::Peaks::default();
    let targets = poller::Targets::default();
    let poller_config = poller::PollerConfig::from(config);
    if let Some(interval) = poller_config.listen_poll_interval {
        let thread = poll_thread("sockdiag-listen", "listen_sampler", metrics)?;
        let unix = poller_config.collectors.enabled(CollectorKind::Unix);
        let (peaks, targets) = (Arc::clone(&peaks), Arc::clone(&targets));
        let proc_root = poller_config.sources.proc_root.clone();
        let fresh = move || {
            poller::ListenSampler::new(Arc::clone(&peaks), Arc::clone(&targets), proc_root.clone())
                .with_unix(unix)
        };
        tokio::spawn(poller::run_listen_sampler(
            interval,
            publish.clone(),
            fresh,
            thread,
            stopping.clone(),
        ));
    }
    let collectors_off: Vec<&str> = poller_config
        .collectors()
        .iter()
        .filter(|(_, on)| !on)
        .map(|(kind, _)| kind.label())
        .collect();
    let collectors_off = collectors_off.join(",");
    let thread = poll_thread("sockdiag-poll", "poll", metrics)?;
    tokio::spawn(poller::run(
        poller_config,
        publish,
        peaks,
        targets,
        thread,
        stopping.clone(),
    ));
    Ok(collectors_off)
}

/// Starts a poll thread; a priority that could not be lowered is logged (once: the
/// thread keeps its priority for life) and exported, not fatal.
fn poll_thread(
    name: &'static str,
    label: &'static str,
    metrics: &poller::PollThreadMetrics,
) -> anyhow::Result<poller::PollThread> {
    let (thread, lowered) = poller::PollThread::spawn(name)?;
    metrics.record(label, lowered.as_ref());
    if let Some(error) = lowered {
        tracing::warn!(
            thread = name,
            %error,
            "polls run at the priority of the HTTP workers; scrapes can wait for them \
             (allow setpriority: see docs/deploy.md)"
        );
    }
    Ok(thread)
}

/// The HTTP servers, one per listening address.
type Servers = tokio::task::JoinSet<Result<(), http::HttpError>>;

/// The signals the daemon answers: SIGTERM and SIGINT stop it (a second one ends the
/// drain), SIGHUP reloads the web config.
struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Signals> {
        Ok(Signals {
            terminate: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            interrupt: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            hangup: signal(SignalKind::hangup()).context("cannot handle SIGHUP")?,
        })
    }

    /// Serves until SIGTERM or SIGINT; a server that ends on its own is a failure.
    async fn until_stop(
        &mut self,
        security: &Option<WebSecurity>,
        servers: &mut Servers,
        stop: &watch::Sender<bool>,
    ) -> anyhow::Result<()> {
        loop {
            tokio::select! {
                _ = self.terminate.recv() => {
                    tracing::info!(signal = "SIGTERM", "shutting down");
                    return Ok(());
                }
                _ = self.interrupt.recv() => {
                    tracing::info!(signal = "SIGINT", "shutting down");
                    return Ok(());
                }
                _ = self.hangup.recv() => match security {
                    Some(security) => {
                        tracing::info!(signal = "SIGHUP", "reloading the web config");
                        security.reload();
                    }
                    None => tracing::info!(
                        signal = "SIGHUP",
                        "ignored: no web config to reload; the config file and flags are read at start only"
                    ),
                },
                Some(result) = servers.join_next() => {
                    // A server ending on its own is a failure: stop the rest and report it.
                    let _ = stop.send(true);
                    result.context("server task failed")??;
                    anyhow::bail!("a server stopped unexpectedly");
                }
            }
        }
    }

    /// Lets the servers finish their requests, for at most `deadline`; a second signal
    /// ends the drain at once.
    async fn drain(&mut self, servers: &mut Servers, deadline: std::time::Duration) -> ExitCode {
        let drain = async {
            while let Some(result) = servers.join_next().await {
                match result {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "server ended with an error while draining")
                    }
                    Err(error) => tracing::warn!(%error, "server task failed while draining"),
                }
            }
        };
        tokio::select! {
            _ = drain => {
                tracing::info!("stopped");
                ExitCode::SUCCESS
            }
            _ = tokio::time::sleep(deadline) => {
                tracing::warn!(deadline = %humantime::format_duration(deadline), "drain deadline passed, exiting with requests in flight");
                ExitCode::SUCCESS
            }
            _ = self.terminate.recv() => {
                tracing::warn!(signal = "SIGTERM", "second signal, exiting without draining");
                ExitCode::from(exit::SIGTERM)
            }
            _ = self.interrupt.recv() => {
                tracing::warn!(signal = "SIGINT", "second signal, exiting without draining");
                ExitCode::from(exit::SIGINT)
            }
        }
    }
}
