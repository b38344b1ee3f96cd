//! Where Redis is: one server (`redis://`, `rediss://`), or the master that
//! a set of Sentinels names (`redis+sentinel://`, `rediss+sentinel://`), looked up again each time
//! a connection is made, so that connections follow a failover, or a
//! Redis Cluster (`redis+cluster://`), whose commands redis-rs's cluster
//! client routes to the node owning each key's slot.
//!
//! TLS goes through redis-rs and rustls. The files a TLS connection needs
//! (the CA that signed the server's certificate, a client certificate and
//! its key) come from [`TlsFiles`] or from the URL's query
//! (`?tls_ca=…&tls_cert=…&tls_key=…`); `?insecure` (or `?insecure=true`,
//! `?insecure=1`, redis-rs's `#insecure`) turns certificate checks off, and
//! only when it is written: any other value is refused.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use percent_encoding::percent_decode_str;
use redis::cluster::ClusterClient;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    Client, ClientTlsConfig, ErrorKind, IntoConnectionInfo, RedisConnectionInfo, RedisError,
    TlsCertificates, Value,
};

use crate::error::{Error, NameError, TransportError};

/// Every command tidings sends, as ACL rules: the library (publishing,
/// consuming, dead letters, retries, stats, Pub/Sub, request and reply,
/// the Lua scripts, whose commands Redis checks too), the CLI, `SELECT`
/// for a database other than 0, `WAIT` for
/// [`Durability::Replicated`](crate::streams::Durability::Replicated), and
/// on a Redis Cluster the `CLUSTER SLOTS` and `ASKING` that redis-rs's
/// cluster client sends to learn the map of slots and to follow an `ASK`
/// redirection while a slot moves. `AUTH` needs no rule. redis-rs
/// also sends `CLIENT SETINFO` on connecting and ignores its reply: it is
/// left out, as Redis before 7.2 does not know it and would refuse the rule.
pub const ACL_COMMANDS: &str = "+ping +select +multi +exec +discard \
+evalsha +script|load \
+publish +subscribe +psubscribe +unsubscribe +punsubscribe \
+xadd +xreadgroup +xread +xack +xautoclaim +xclaim +xgroup +xinfo +xlen +xpending \
+xrange +xrevrange +xdel +xtrim \
+exists +type +scan +get +set +del +pexpire +hget +hset +hdel \
+zadd +zcard +zrange +zrangebyscore +zrem +zremrangebyscore \
+wait +cluster|slots +asking";

/// The ACL rule of a user that can do everything tidings does under
/// `namespace` and nothing else: its keys (`~<ns>:*`), its Pub/Sub
/// channels (`&<ns>:*`), [`ACL_COMMANDS`], no `@dangerous` command
/// whatever is added later, and then `ROLE` (which is `@dangerous`),
/// which redis-rs sends to the master a Sentinel names to check that it
/// is one. Give it to `ACL SETUSER <user> on ><password>` (each word an
/// argument), or write it on a `user` line of an ACL file.
///
/// Pattern subscriptions ([`Bus::subscribe_pattern`](crate::Bus::subscribe_pattern))
/// need more: Redis allows a `PSUBSCRIBE` pattern only when the rule names
/// that very pattern, so `&<ns>:*` does not cover `<ns>:gates:gate.*`;
/// [`acl_rule_with_patterns`] adds them.
///
/// ```
/// let rule = tidings::streams::acl_rule("orders");
/// assert!(rule.starts_with("resetkeys ~orders:* resetchannels &orders:* -@all +ping "));
/// assert!(rule.ends_with(" -@dangerous +role"));
/// ```
pub fn acl_rule(namespace: &str) -> String {
    rule(namespace, "")
}

/// [`acl_rule`], allowing the pattern subscriptions `patterns` too: each
/// is a `PSUBSCRIBE` pattern as the bus sends it, which
/// [`Bus::channel_pattern`](crate::Bus::channel_pattern) gives
/// (`<ns>:<channel>:<type pattern>`, with the tenant after the namespace
/// on a tenant's bus).
///
/// Fails with a [`NameError`] when a pattern is outside `namespace` (it
/// does not start with `<namespace>:`) or holds whitespace, which would
/// end the rule's word.
///
/// ```
/// # use tidings::streams::acl_rule_with_patterns;
/// let rule = acl_rule_with_patterns("orders", &["orders:gates:gate.*"])?;
/// assert!(rule.starts_with("resetkeys ~orders:* resetchannels &orders:* &orders:gates:gate.* -@all "));
/// assert!(acl_rule_with_patterns("orders", &["billing:gates:*"]).is_err());
/// # Ok::<(), tidings::NameError>(())
/// ```
pub fn acl_rule_with_patterns(namespace: &str, patterns: &[&str]) -> Result<String, NameError> {
    let mut extra = String::new();
    for pattern in patterns {
        let refuse = |reason: String| NameError {
            what: "pattern of the ACL rule",
            name: (*pattern).to_owned(),
            reason,
        };
        let outside = pattern
            .strip_prefix(namespace)
            .and_then(|rest| rest.strip_prefix(':'))
            .is_none_or(str::is_empty);
        if outside {
            return Err(refuse(format!(
                "it is not a pattern of the namespace: write `{namespace}:<channel>:<type pattern>`, \
                 as Bus::channel_pattern gives it"
            )));
        }
        if let Some(c) = pattern
            .chars()
            .find(|c| c.is_whitespace() || c.is_control())
        {
            return Err(refuse(format!(
                "it contains {c:?}, which would split the rule"
            )));
        }
        extra.push_str(" &");
        extra.push_str(pattern);
    }
    Ok(rule(namespace, &extra))
}

fn rule(namespace: &str, patterns: &str) -> String {
    let commands = ACL_COMMANDS
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    // Rules apply left to right: `+role` after `-@dangerous`, or it is undone.
    format!(
        "resetkeys ~{namespace}:* resetchannels &{namespace}:*{patterns} -@all {commands} \
         -@dangerous {AFTER_DANGEROUS}"
    )
}

/// The `@dangerous` commands tidings needs: `ROLE`, sent by redis-rs to
/// the master a Sentinel names (`INFO replication` only if `ROLE` fails).
const AFTER_DANGEROUS: &str = "+role";

/// The port of a Sentinel when the URL gives none.
const SENTINEL_PORT: u16 = 26379;

/// The files of a TLS connection, all in PEM: the CA certificates that
/// signed the server's certificate (the system's roots when none), and a
/// client certificate with its key for servers that ask for one
/// (`tls-auth-clients yes`, Redis's default).
///
/// ```
/// # use tidings::streams::TlsFiles;
/// let files = TlsFiles::default()
///     .ca("/etc/redis/tls/ca.crt")
///     .client("/etc/redis/tls/client.crt", "/etc/redis/tls/client.key");
/// ```
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    ca: Option<PathBuf>,
    client: Option<(PathBuf, PathBuf)>,
}

impl TlsFiles {
    /// The CA certificate file (PEM; several certificates may follow one
    /// another) that the server's certificate must chain to.
    pub fn ca(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca = Some(path.into());
        self
    }

    /// The client certificate and its private key (PEM), for mutual TLS.
    pub fn client(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.client = Some((cert.into(), key.into()));
        self
    }

    fn is_empty(&self) -> bool {
        self.ca.is_none() && self.client.is_none()
    }

    fn certificates(&self) -> Result<TlsCertificates, Error> {
        let read = |path: &Path, what: &'static str| {
            std::fs::read(path).map_err(|source| Error::TlsFile {
                what,
                path: path.to_owned(),
                source,
            })
        };
        let root_cert = match &self.ca {
            Some(path) => Some(read(path, "CA certificate")?),
            None => None,
        };
        let client_tls = match &self.client {
            Some((cert, key)) => Some(ClientTlsConfig {
                client_cert: read(cert, "client certificate")?,
                client_key: read(key, "client key")?,
            }),
            None => None,
        };
        Ok(TlsCertificates {
            client_tls,
            root_cert,
        })
    }
}

/// Where the bus finds Redis; cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Endpoint {
    inner: Arc<Inner>,
}

enum Inner {
    /// One server, at a fixed address; for `rediss://` that checks the
    /// server's certificate, the same TLS configuration for the
    /// hand-written connections as redis-rs's have.
    Direct(Client, Option<Arc<rustls::ClientConfig>>),
    /// The master a set of Sentinels names.
    Sentinel {
        /// Asks the Sentinels, and logs in to the master they name.
        sentinel: tokio::sync::Mutex<SentinelClient>,
        /// The master's name in the Sentinels' configuration.
        master: String,
        /// `h1:26379,h2:26379`, for messages.
        hosts: String,
        user: Option<String>,
        /// For `rediss+sentinel://` that checks certificates, the TLS
        /// configuration of the hand-written connections to the master.
        rustls: Option<Arc<rustls::ClientConfig>>,
    },
    /// The nodes of a Redis Cluster.
    Cluster {
        client: ClusterClient,
        /// For `rediss+cluster://` that checks certificates, the TLS
        /// configuration of the hand-written reading connections.
        rustls: Option<Arc<rustls::ClientConfig>>,
        /// A client of each node named in the URL, for Pub/Sub (a
        /// `PUBLISH` reaches the subscribers of every node).
        nodes: Vec<Client>,
        /// `h1:p1,h2:p2`, for messages.
        hosts: String,
        user: Option<String>,
    },
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Endpoint").field(&self.describe()).finish()
    }
}

impl Endpoint {
    /// Reads a Redis URL:
    ///
    /// - `redis://[user:password@]host:port[/db]`: one server over TCP;
    /// - `rediss://…`: the same over TLS, checked against the CA of
    ///   `tls` or of the query (`?tls_ca=/path/ca.crt`), with a client
    ///   certificate from `?tls_cert=…&tls_key=…`; `?insecure` (or
    ///   `?insecure=true`, `?insecure=1`, `#insecure`) accepts any
    ///   certificate, and any other value of `insecure` is refused;
    /// - `redis+sentinel://[user:password@]h1:26379,h2:26379/master-name[/db]`:
    ///   the master that the Sentinels at `h1`, `h2`, … (an IPv6 address
    ///   in brackets, `[::1]:26379`) name `master-name`, with a database
    ///   of 0 or more. The user and password are the master's; Sentinels
    ///   that ask for their own get them from the query
    ///   (`?sentinel_user=…&sentinel_password=…`);
    /// - `rediss+sentinel://…`: the same over TLS, to the Sentinels and to
    ///   the master, with the TLS options of `rediss://`;
    /// - `redis+cluster://[user:password@]h1:p1,h2:p2,…`: a Redis Cluster
    ///   that any of the nodes named introduces (redis-rs asks them for
    ///   the map of slots and follows `MOVED` and `ASK`);
    /// - `rediss+cluster://[user:password@]h1:p1,…[/?tls_ca=…&tls_cert=…&tls_key=…]`:
    ///   the same over TLS, with the TLS options of `rediss://` (every node
    ///   is reached with the same files).
    ///
    /// A file named in the query or in `tls` is read here: a missing one
    /// fails with [`Error::TlsFile`]. The password never appears in an
    /// error.
    ///
    /// ```
    /// # use tidings::streams::{Endpoint, TlsFiles};
    /// let one = Endpoint::parse("redis://127.0.0.1:6379/0", &TlsFiles::default())?;
    /// let watched = Endpoint::parse(
    ///     "redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/orders",
    ///     &TlsFiles::default(),
    /// )?;
    /// assert_eq!(watched.describe(), "master `orders` of the Sentinels at 10.0.0.1:26379,10.0.0.2:26379");
    /// let cluster = Endpoint::parse("redis+cluster://10.0.0.1:7000,10.0.0.2:7000", &TlsFiles::default())?;
    /// assert_eq!(cluster.describe(), "the Redis Cluster of 10.0.0.1:7000,10.0.0.2:7000");
    /// assert!(Endpoint::parse("redis://h:6379/?insecure", &TlsFiles::default()).is_err());
    /// # Ok::<(), tidings::Error>(())
    /// ```
    pub fn parse(url: &str, tls: &TlsFiles) -> Result<Endpoint, Error> {
        let invalid = |detail: String| Error::InvalidUrl {
            url: redact(url),
            source: RedisError::from((ErrorKind::InvalidClientConfig, "invalid URL", detail)),
        };
        let sentinel_tls = url.starts_with("rediss+sentinel://");
        if sentinel_tls || url.starts_with("redis+sentinel://") {
            let (login, rest) = split_login(url);
            let q = TlsQuery::read(rest, tls).map_err(invalid)?;
            refuse_fragment(&q).map_err(invalid)?;
            if !sentinel_tls && (q.asks_tls() || q.fragment.is_some()) {
                return Err(invalid(
                    "TLS options (`tls_ca`, `tls_cert`, `tls_key`, `insecure`, or TLS files on \
                     the builder) need a `rediss+sentinel://` URL"
                        .into(),
                ));
            }
            let mut sentinels = Login::default();
            for pair in &q.kept {
                let (name, raw) = pair.split_once('=').unwrap_or((pair, ""));
                let value = percent_decode_str(raw).decode_utf8_lossy().into_owned();
                match name {
                    "sentinel_user" if !value.is_empty() => sentinels.user = Some(value),
                    "sentinel_password" if !value.is_empty() => sentinels.password = Some(value),
                    // The value is not shown: it may be a password.
                    _ => {
                        return Err(invalid(format!(
                            "`{name}`: a Sentinel URL takes `sentinel_user` and \
                             `sentinel_password` (not empty) and, over TLS, the TLS options"
                        )))
                    }
                }
            }
            let tls = match sentinel_tls {
                true => Some(SentinelTls {
                    certificates: (!q.files.is_empty())
                        .then(|| q.files.certificates())
                        .transpose()?,
                    insecure: q.insecure || q.fragment == Some("insecure"),
                }),
                false => None,
            };
            let parsed = SentinelUrl::parse(login, q.base).map_err(invalid)?;
            return Self::sentinel(parsed, sentinels, tls).map_err(invalid);
        }
        let cluster_tls = url.starts_with("rediss+cluster://");
        if cluster_tls || url.starts_with("redis+cluster://") {
            let (login, rest) = split_login(url);
            let q = TlsQuery::read(rest, tls).map_err(invalid)?;
            refuse_fragment(&q).map_err(invalid)?;
            if !cluster_tls && (q.asks_tls() || q.fragment.is_some()) {
                return Err(invalid(
                    "TLS options (`tls_ca`, `tls_cert`, `tls_key`, `insecure`, or TLS files on \
                     the builder) need a `rediss+cluster://` URL"
                        .into(),
                ));
            }
            if let Some(pair) = q.kept.first() {
                // The name only: the value may be a secret.
                let name = pair.split_once('=').map_or(*pair, |(name, _)| name);
                return Err(invalid(format!(
                    "`{name}`: a cluster URL names its nodes and, over TLS, its TLS options only"
                )));
            }
            let tls = match cluster_tls {
                true => Some((
                    q.files.certificates()?,
                    q.insecure || q.fragment == Some("insecure"),
                )),
                false => None,
            };
            return Self::cluster(login, q.base, tls).map_err(invalid);
        }
        let TlsQuery {
            base,
            files,
            insecure,
            kept,
            fragment,
        } = TlsQuery::read(url, tls).map_err(invalid)?;
        let tls_url = url.starts_with("rediss://") || url.starts_with("valkeys://");
        if !tls_url && (insecure || !files.is_empty()) {
            return Err(invalid(
                "TLS options (`tls_ca`, `tls_cert`, `tls_key`, `insecure`, or TLS files on the \
                 builder) need a `rediss://` URL"
                    .into(),
            ));
        }
        let insecure = insecure || fragment == Some("insecure");
        // As a URL is written: `base?query#fragment`.
        let mut plain = base.to_owned();
        if !kept.is_empty() {
            plain.push('?');
            plain.push_str(&kept.join("&"));
        }
        match fragment {
            Some(fragment) => {
                plain.push('#');
                plain.push_str(fragment);
            }
            None if insecure => plain.push_str("#insecure"),
            None => {}
        }
        let certificates = files.certificates()?;
        let client = if files.is_empty() {
            Client::open(plain.as_str())
        } else {
            Client::build_with_tls(plain.as_str(), certificates.clone())
        }
        .map_err(|source| Error::InvalidUrl {
            url: redact(url),
            source,
        })?;
        let rustls = match tls_url && !insecure {
            true => Some(Arc::new(rustls_config(&certificates).map_err(invalid)?)),
            false => None,
        };
        Ok(Endpoint {
            inner: Arc::new(Inner::Direct(client, rustls)),
        })
    }

    /// The TLS configuration of the hand-written connections, for a
    /// `rediss://` URL that checks the server's certificate.
    pub(crate) fn rustls_config(&self) -> Option<Arc<rustls::ClientConfig>> {
        match &*self.inner {
            Inner::Direct(_, tls)
            | Inner::Sentinel { rustls: tls, .. }
            | Inner::Cluster { rustls: tls, .. } => tls.clone(),
        }
    }

    /// The nodes of `h1:p1,h2:p2` (after the scheme and the login), over
    /// TLS with these certificates (and checks off when insecure) when
    /// `tls` is given.
    fn cluster(
        login: Option<&str>,
        rest: &str,
        tls: Option<(TlsCertificates, bool)>,
    ) -> Result<Endpoint, String> {
        let hosts = rest.trim_end_matches('/');
        if hosts.contains('/') || hosts.contains('?') {
            return Err("a cluster URL names its nodes, and no database: \
                 redis+cluster://h1:p1,h2:p2"
                .into());
        }
        let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
        let (user, password) = match login {
            Some(login) => {
                let (name, password) = login.split_once(':').unwrap_or((login, ""));
                (
                    (!name.is_empty()).then(|| decode(name)),
                    (!password.is_empty()).then(|| decode(password)),
                )
            }
            None => (None, None),
        };
        let mut infos = Vec::new();
        for host in hosts.split(',') {
            let (name, port) = host
                .rsplit_once(':')
                .ok_or_else(|| format!("the cluster node `{host}` has no port"))?;
            let port = port
                .parse::<u16>()
                .map_err(|_| format!("the port of the cluster node `{host}` is not a number"))?;
            if name.is_empty() {
                return Err(format!("a cluster node's host is empty in `{hosts}`"));
            }
            let mut settings = RedisConnectionInfo::default();
            if let Some(user) = &user {
                settings = settings.set_username(user.clone());
            }
            if let Some(password) = &password {
                settings = settings.set_password(password.clone());
            }
            let addr = match &tls {
                None => redis::ConnectionAddr::Tcp(name.to_owned(), port),
                Some((_, insecure)) => redis::ConnectionAddr::TcpTls {
                    host: name.to_owned(),
                    port,
                    insecure: *insecure,
                    tls_params: None,
                },
            };
            let info = addr
                .into_connection_info()
                .map_err(|e| e.to_string())?
                .set_redis_settings(settings);
            infos.push(info);
        }
        let nodes = infos
            .iter()
            .map(|info| match &tls {
                Some((certificates, _)) => {
                    Client::build_with_tls(info.clone(), certificates.clone())
                }
                None => Client::open(info.clone()),
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let rustls = match &tls {
            Some((certificates, false)) => Some(Arc::new(rustls_config(certificates)?)),
            _ => None,
        };
        let mut builder = ClusterClient::builder(infos);
        if let Some((certificates, insecure)) = tls {
            builder = builder
                .tls(match insecure {
                    true => redis::TlsMode::Insecure,
                    false => redis::TlsMode::Secure,
                })
                .certs(certificates);
        }
        let client = builder.build().map_err(|e| e.to_string())?;
        Ok(Endpoint {
            inner: Arc::new(Inner::Cluster {
                client,
                rustls,
                nodes,
                hosts: hosts.to_owned(),
                user,
            }),
        })
    }

    /// The cluster client, for a `redis+cluster://` URL.
    pub fn cluster_client(&self) -> Option<&ClusterClient> {
        match &*self.inner {
            Inner::Cluster { client, .. } => Some(client),
            _ => None,
        }
    }

    /// The master the Sentinels of `url` name, logging in to the
    /// Sentinels as `sentinels` says, over TLS when `tls` is given (to the
    /// Sentinels and to the master alike).
    fn sentinel(
        url: SentinelUrl,
        sentinels: Login,
        tls: Option<SentinelTls>,
    ) -> Result<Endpoint, String> {
        let addrs = url.addrs.iter().map(|(host, port)| match &tls {
            None => redis::ConnectionAddr::Tcp(host.clone(), *port),
            Some(tls) => redis::ConnectionAddr::TcpTls {
                host: host.clone(),
                port: *port,
                insecure: tls.insecure,
                tls_params: None,
            },
        });
        let mut builder =
            SentinelClientBuilder::new(addrs, &url.master, SentinelServerType::Master)
                .map_err(|e| e.to_string())?
                .set_client_to_redis_db(url.db);
        if let Some(user) = &url.login.user {
            builder = builder.set_client_to_redis_username(user);
        }
        if let Some(password) = &url.login.password {
            builder = builder.set_client_to_redis_password(password);
        }
        if let Some(user) = &sentinels.user {
            builder = builder.set_client_to_sentinel_username(user);
        }
        if let Some(password) = &sentinels.password {
            builder = builder.set_client_to_sentinel_password(password);
        }
        let mut rustls = None;
        if let Some(tls) = tls {
            let mode = match tls.insecure {
                true => redis::TlsMode::Insecure,
                false => redis::TlsMode::Secure,
            };
            builder = builder
                .set_client_to_redis_tls_mode(mode)
                .set_client_to_sentinel_tls_mode(mode);
            let certificates = tls.certificates.unwrap_or(TlsCertificates {
                client_tls: None,
                root_cert: None,
            });
            if !tls.insecure {
                rustls = Some(Arc::new(rustls_config(&certificates)?));
            }
            if certificates.root_cert.is_some() || certificates.client_tls.is_some() {
                builder = builder
                    .set_client_to_redis_certificates(certificates.clone())
                    .set_client_to_sentinel_certificates(certificates);
            }
        }
        let sentinel = builder.build().map_err(|e| e.to_string())?;
        Ok(Endpoint {
            inner: Arc::new(Inner::Sentinel {
                sentinel: tokio::sync::Mutex::new(sentinel),
                master: url.master,
                hosts: url.hosts,
                user: url.login.user,
                rustls,
            }),
        })
    }

    /// Whether the address is looked up at each connection (Sentinel), so
    /// that a connection that fails should be made again rather than
    /// retried at the same address.
    pub fn follows_failover(&self) -> bool {
        matches!(*self.inner, Inner::Sentinel { .. })
    }

    /// `host:port` of a server, or the master's name and its Sentinels.
    pub fn describe(&self) -> String {
        match &*self.inner {
            Inner::Direct(client, _) => client.get_connection_info().addr().to_string(),
            Inner::Sentinel { master, hosts, .. } => {
                format!("master `{master}` of the Sentinels at {hosts}")
            }
            Inner::Cluster { hosts, .. } => format!("the Redis Cluster of {hosts}"),
        }
    }

    /// The ACL user the URL logs in as, if it names one.
    pub fn user(&self) -> Option<String> {
        match &*self.inner {
            Inner::Direct(client, _) => client
                .get_connection_info()
                .redis_settings()
                .username()
                .map(str::to_owned),
            Inner::Sentinel { user, .. } | Inner::Cluster { user, .. } => user.clone(),
        }
    }

    /// A client for the server to connect to now: the one server, or the
    /// master the Sentinels name at this moment (asked each time, the first
    /// Sentinel that answers with a master that says it is one wins).
    ///
    /// Behind Sentinel, while the master is down and not yet replaced, this
    /// fails as connecting to it does (refused, timed out), which
    /// [`TransportError::is_transient`] counts as worth a retry.
    ///
    /// On a cluster, a client of the first node named in the URL that
    /// answers a `PING`: good for Pub/Sub, which every node relays, and
    /// for nothing that touches a key (see [`Endpoint::cluster_client`]).
    pub async fn client(&self) -> redis::RedisResult<Client> {
        match &*self.inner {
            Inner::Direct(client, _) => Ok(client.clone()),
            Inner::Cluster { nodes, .. } => {
                let mut last = None;
                for node in nodes {
                    match node.get_multiplexed_async_connection().await {
                        Ok(mut conn) => {
                            match redis::cmd("PING").query_async::<Value>(&mut conn).await {
                                Ok(_) => return Ok(node.clone()),
                                Err(e) => last = Some(e),
                            }
                        }
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| {
                    RedisError::from((ErrorKind::InvalidClientConfig, "no cluster node named"))
                }))
            }
            Inner::Sentinel { sentinel, .. } => sentinel.lock().await.async_get_client().await,
        }
    }

    /// [`Endpoint::client`], failing as a first connection does: with
    /// [`TransportError::Connect`], naming the Sentinels and the user.
    pub async fn first_client(&self) -> Result<Client, TransportError> {
        self.client()
            .await
            .map_err(|source| TransportError::Connect {
                address: self.describe(),
                user: self.user(),
                source,
            })
    }
}

/// The login (`user:password`, before the last `@`) of a Sentinel or
/// cluster URL, and the rest after the scheme. A password may hold `?`,
/// `#` or `/` as written; a query value that holds `@` must write it `%40`.
fn split_login(url: &str) -> (Option<&str>, &str) {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    match rest.rsplit_once('@') {
        Some((login, rest)) => (Some(login), rest),
        None => (None, rest),
    }
}

/// Refuses a fragment other than `#insecure`, as redis-rs does.
fn refuse_fragment(q: &TlsQuery<'_>) -> Result<(), String> {
    match q.fragment {
        None | Some("insecure") => Ok(()),
        Some(_) => {
            Err("a fragment other than `#insecure`: write `%23` for a `#` in a value".into())
        }
    }
}

/// A user and a password, each if given.
#[derive(Default)]
struct Login {
    user: Option<String>,
    password: Option<String>,
}

/// TLS to the Sentinels and to the master: the files of the URL or the
/// builder (the system's roots when none), and whether checks are off.
struct SentinelTls {
    certificates: Option<TlsCertificates>,
    insecure: bool,
}

/// What a Sentinel URL says after its scheme and before its query:
/// `[user:password@]h1:26379,h2/master-name[/db]`.
#[derive(Debug)]
struct SentinelUrl {
    /// `h1:26379,h2`, as written, for messages.
    hosts: String,
    addrs: Vec<(String, u16)>,
    master: String,
    db: i64,
    /// The master's user and password.
    login: Login,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

impl SentinelUrl {
    /// `rest` is what follows the scheme and the login (`user:password`).
    fn parse(login: Option<&str>, rest: &str) -> Result<SentinelUrl, String> {
        let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
        let segments: Vec<&str> = path.split('/').collect();
        if segments.len() > 2 {
            return Err(format!(
                "the path `/{path}` has more than a master name and a database: \
                 redis+sentinel://host:26379/master-name[/db]"
            ));
        }
        let master = segments[0];
        if master.is_empty() {
            return Err(
                "a Sentinel URL names its master: redis+sentinel://host:26379/master-name".into(),
            );
        }
        let db = match segments.get(1) {
            None | Some(&"") => 0,
            Some(db) => db
                .parse::<i64>()
                .ok()
                .filter(|db| *db >= 0)
                .ok_or_else(|| {
                    format!(
                        "the database `{db}` after the master name is not a number of 0 or more"
                    )
                })?,
        };
        let mut addrs = Vec::new();
        for host in hosts.split(',') {
            let (name, port) = sentinel_address(host)?;
            if name.is_empty() {
                return Err(format!("a Sentinel host is empty in `{hosts}`"));
            }
            addrs.push((name.to_owned(), port));
        }
        let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
        let mut parsed = Login::default();
        if let Some(login) = login {
            let (name, password) = login.split_once(':').unwrap_or((login, ""));
            parsed.user = (!name.is_empty()).then(|| decode(name));
            parsed.password = (!password.is_empty()).then(|| decode(password));
        }
        Ok(SentinelUrl {
            hosts: hosts.to_owned(),
            addrs,
            master: master.to_owned(),
            db,
            login: parsed,
        })
    }
}

/// The host and port of one Sentinel of a URL: `host`, `host:port`,
/// `[v6]` or `[v6]:port` (the host without its brackets).
fn sentinel_address(host: &str) -> Result<(&str, u16), String> {
    let port = |port: &str| {
        port.parse::<u16>()
            .map_err(|_| format!("the port of the Sentinel `{host}` is not a number"))
    };
    if let Some(bracketed) = host.strip_prefix('[') {
        let (name, after) = bracketed
            .split_once(']')
            .ok_or_else(|| format!("the IPv6 address of the Sentinel `{host}` has no `]`"))?;
        return match after {
            "" => Ok((name, SENTINEL_PORT)),
            _ => match after.strip_prefix(':') {
                Some(p) => Ok((name, port(p)?)),
                None => Err(format!(
                    "`{after}` after the IPv6 address of the Sentinel `{host}`: write `[address]:port`"
                )),
            },
        };
    }
    match host.rsplit_once(':') {
        Some((name, p)) => Ok((name, port(p)?)),
        None => Ok((host, SENTINEL_PORT)),
    }
}

/// A rustls configuration as redis-rs makes its own: the CA of the files,
/// or the system's roots, and the client certificate if there is one.
fn rustls_config(certificates: &TlsCertificates) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    match &certificates.root_cert {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("the CA certificate: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("the CA certificate: {e}"))?;
            }
        }
        None => {
            // As redis-rs: a certificate of the system's store that does not
            // parse is passed over, the others trusted.
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    match &certificates.client_tls {
        None => Ok(builder.with_no_client_auth()),
        Some(ClientTlsConfig {
            client_cert,
            client_key,
        }) => {
            let chain = CertificateDer::pem_slice_iter(client_cert)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("the client certificate: {e}"))?;
            let key = PrivateKeyDer::from_pem_slice(client_key)
                .map_err(|e| format!("the client key: {e}"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("the client certificate and key: {e}"))
        }
    }
}

/// What the query and fragment of a URL say about TLS: the files (those
/// given to the builder, then the query's), whether certificate checks are
/// off by the query (`?insecure`, `?insecure=true|1`), the fragment
/// (`#insecure` is redis-rs's way to say the same), and the rest of
/// the query, for redis-rs.
struct TlsQuery<'a> {
    /// The URL before its query.
    base: &'a str,
    files: TlsFiles,
    insecure: bool,
    /// The query's other pairs, as written.
    kept: Vec<&'a str>,
    fragment: Option<&'a str>,
}

impl<'a> TlsQuery<'a> {
    fn read(url: &'a str, tls: &TlsFiles) -> Result<TlsQuery<'a>, String> {
        let (base, query, fragment) = split_query(url);
        let mut files = tls.clone();
        let mut insecure = false;
        let mut cert = None;
        let mut key = None;
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, raw) = match pair.split_once('=') {
                Some((name, raw)) => (name, Some(raw)),
                None => (pair, None),
            };
            let value = || {
                percent_decode_str(raw.unwrap_or(""))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            match name {
                "tls_ca" => files = files.ca(value()),
                "tls_cert" => cert = Some(value()),
                "tls_key" => key = Some(value()),
                "insecure" => match raw {
                    None | Some("true") | Some("1") => insecure = true,
                    Some(other) => {
                        return Err(format!(
                            "`insecure={other}`: write `insecure` (or `insecure=true`) to turn \
                             certificate checks off, and leave it out to keep them"
                        ))
                    }
                },
                _ => kept.push(pair),
            }
        }
        match (cert, key) {
            (Some(cert), Some(key)) => files = files.client(cert, key),
            (None, None) => {}
            _ => return Err("`tls_cert` and `tls_key` go together: give both or neither".into()),
        }
        Ok(TlsQuery {
            base,
            files,
            insecure,
            kept,
            fragment,
        })
    }

    /// Whether anything of TLS was asked for.
    fn asks_tls(&self) -> bool {
        self.insecure || !self.files.is_empty()
    }
}

/// The URL before its query, the query (empty when there is none), and
/// the fragment (`insecure` in `…#insecure`), if there is one.
fn split_query(url: &str) -> (&str, &str, Option<&str>) {
    let (url, fragment) = match url.split_once('#') {
        Some((url, fragment)) => (url, Some(fragment)),
        None => (url, None),
    };
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    (base, query, fragment)
}

/// A URL as it may be shown: `scheme://user:password@host` as
/// `scheme://***@host`, and the value of every `name=value` pair whose name
/// speaks of a password (`sentinel_password`, misspelt or not) as `***`.
///
/// ```
/// use tidings::streams::redact;
/// assert_eq!(redact("redis://u:s3cret@h:6379/0"), "redis://***@h:6379/0");
/// assert_eq!(
///     redact("redis+sentinel://h:26379/m?sentinel_password=s3cret&x=1"),
///     "redis+sentinel://h:26379/m?sentinel_password=***&x=1"
/// );
/// ```
pub fn redact(url: &str) -> String {
    // The pairs first: a raw `@` in a secret value is hidden with it, and
    // is then no login's end.
    let mut masked = String::with_capacity(url.len());
    for (i, part) in url.split_inclusive(['?', '&', '#']).enumerate() {
        let (body, end) = match part.char_indices().last() {
            Some((at, '?' | '&' | '#')) => (&part[..at], &part[at..]),
            _ => (part, ""),
        };
        match body.split_once('=') {
            Some((name, _)) if i > 0 && secret(name) => {
                masked.push_str(name);
                masked.push_str("=***");
            }
            _ => masked.push_str(body),
        }
        masked.push_str(end);
    }
    match (masked.find("://"), masked.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &masked[..scheme], &masked[at + 1..])
        }
        _ => masked,
    }
}

/// Whether a query pair named `name` may hold a secret.
fn secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["pass", "secret", "token", "pw"]
        .iter()
        .any(|s| name.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<Endpoint, Error> {
        Endpoint::parse(url, &TlsFiles::default())
    }

    #[test]
    fn sentinel_urls_name_their_master_and_hosts() {
        let e = parse("redis+sentinel://u:p%40ss@a:1,b,c:3/orders/2").unwrap();
        assert!(e.follows_failover());
        assert_eq!(e.user().as_deref(), Some("u"));
        assert_eq!(
            e.describe(),
            "master `orders` of the Sentinels at a:1,b,c:3"
        );
        for bad in [
            "redis+sentinel://a:26379",
            "redis+sentinel://a:26379/",
            "redis+sentinel://a:x/m",
            "redis+sentinel://a:1,/m",
            "redis+sentinel://a:1/m/zero",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains("invalid Redis URL"), "{bad}: {e}");
        }
    }

    #[test]
    fn sentinel_urls_take_the_sentinels_login_and_tls_options() {
        for url in [
            "redis+sentinel://a:1/m?sentinel_password=s%40cret",
            "redis+sentinel://u:p@a:1,b:2/m/1?sentinel_user=watch&sentinel_password=pw",
            "rediss+sentinel://a:1/m",
            "rediss+sentinel://a:1/m?insecure&sentinel_password=pw",
            "rediss+sentinel://a:1/m#insecure",
        ] {
            assert!(parse(url).unwrap().follows_failover(), "{url}");
        }
        assert!(parse("rediss+sentinel://a:1/m")
            .unwrap()
            .rustls_config()
            .is_some());
        assert!(parse("rediss+sentinel://a:1/m?insecure")
            .unwrap()
            .rustls_config()
            .is_none());
        for bad in [
            "redis+sentinel://a:1/m?insecure",
            "redis+sentinel://a:1/m?tls_ca=/a",
            "redis+sentinel://a:1/m?sentinel_password=",
            "redis+sentinel://a:1/m?sentinel_pass=s3cret-pw",
            "rediss+sentinel://a:1/m?insecure=no",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains("invalid Redis URL"), "{bad}: {e}");
            assert!(!e.contains("s3cret-pw"), "{bad}: {e}");
        }
        let e = parse("redis+sentinel://a:x/m?sentinel_password=s3cret-pw")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("s3cret-pw"), "{e}");
        assert!(e.contains("sentinel_password=***"), "{e}");
    }

    #[test]
    fn secrets_are_never_shown_whatever_they_hold() {
        for (url, secret) in [
            ("redis+sentinel://u:pa?ss@h:26379/m", "pa?ss"),
            ("redis+cluster://u:p#w@a:1", "p#w"),
            (
                "redis+sentinel://h:1/m?sentinel_password=p@ss-word",
                "ss-word",
            ),
            ("redis+sentinel://h:1/m?sentinel_pass=s3cret&x=1", "s3cret"),
            ("redis://:s3cret@h:6379/0", "s3cret"),
        ] {
            let shown = redact(url);
            assert!(!shown.contains(secret), "{url} shown as {shown}");
        }
        // Passwords may hold `?`, `#` and `/` in a Sentinel or cluster URL.
        let e = parse("redis+sentinel://u:pa?s#s/w@h:1/m").unwrap();
        assert_eq!(e.user().as_deref(), Some("u"));
        assert!(parse("redis+cluster://u:p#w@a:1,b:2")
            .unwrap()
            .cluster_client()
            .is_some());
        // A cluster URL's unknown query is refused by name, value unshown.
        let e = parse("redis+cluster://a:1/?sentinel_password=s3cret-pw")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`sentinel_password`"), "{e}");
        assert!(!e.contains("s3cret-pw"), "{e}");
        // Fragments other than `#insecure` are refused, and that one
        // without TLS.
        for bad in [
            "redis+sentinel://h:1/m?sentinel_password=ab#cd",
            "redis+sentinel://h:1/m#insecure",
            "redis+cluster://a:1#insecure",
            "rediss+cluster://a:1#other",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains("invalid Redis URL"), "{bad}: {e}");
            assert!(!e.contains("ab#cd"), "{bad}: {e}");
        }
    }

    #[test]
    fn cluster_urls_name_their_nodes() {
        let e = parse("redis+cluster://u:p%40ss@a:7000,b:7001/").unwrap();
        assert!(e.cluster_client().is_some());
        assert!(!e.follows_failover());
        assert_eq!(e.user().as_deref(), Some("u"));
        assert_eq!(e.describe(), "the Redis Cluster of a:7000,b:7001");
        for bad in [
            "redis+cluster://a",
            "redis+cluster://a:x",
            "redis+cluster://a:1,:2",
            "redis+cluster://a:1/0",
            "redis+cluster://a:1/?tls_ca=/a",
            "redis+cluster://a:1/?insecure",
            "redis+cluster://a:1/?timeout=3",
            "rediss+cluster://a:1/?insecure=no",
            "rediss+cluster://a:1/?tls_cert=/a",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains("invalid Redis URL"), "{bad}: {e}");
        }
        let e = parse("rediss+cluster://a:1/?tls_ca=/no/such/ca.crt")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/no/such/ca.crt"), "{e}");
        // Over TLS, checking the certificate or not.
        for url in [
            "rediss+cluster://u:p@a:7000,b:7001",
            "rediss+cluster://a:7000,b:7001/?insecure",
            "rediss+cluster://a:7000/#insecure",
        ] {
            let e = parse(url).unwrap();
            assert!(e.cluster_client().is_some(), "{url}");
        }
        let e = parse("redis+cluster://u:secret@a:x")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn tls_options_need_rediss_and_never_show_the_password() {
        let e = parse("redis://u:secret@h:6379/?insecure")
            .unwrap_err()
            .to_string();
        assert!(e.contains("rediss://"), "{e}");
        assert!(!e.contains("secret"), "{e}");
        let e = parse("rediss://h:6379/?tls_cert=/a")
            .unwrap_err()
            .to_string();
        assert!(e.contains("tls_key"), "{e}");
        let e = parse("rediss://h:6379/?tls_ca=/no/such/ca.crt")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/no/such/ca.crt"), "{e}");
        assert!(parse("rediss://h:6379/?insecure").is_ok());
        assert!(parse("rediss://h:6379/#insecure").is_ok());
        assert!(!parse("redis://h:6379").unwrap().follows_failover());
    }

    /// The connection info of a `redis://` or `rediss://` endpoint, and
    /// whether the hand-written connections check the certificate.
    fn direct(url: &str) -> (redis::ConnectionInfo, bool) {
        match &*parse(url).unwrap().inner {
            Inner::Direct(client, rustls) => {
                (client.get_connection_info().clone(), rustls.is_some())
            }
            Inner::Sentinel { .. } | Inner::Cluster { .. } => {
                panic!("{url} is not a direct URL")
            }
        }
    }

    fn is_insecure(info: &redis::ConnectionInfo) -> bool {
        matches!(
            info.addr(),
            redis::ConnectionAddr::TcpTls { insecure: true, .. }
        )
    }

    #[test]
    fn a_kept_query_goes_before_the_fragment() {
        let (info, checked) = direct("rediss://h:6379/?protocol=resp3#insecure");
        assert!(is_insecure(&info), "{:?}", info.addr());
        assert!(!checked);
        assert_eq!(
            info.redis_settings().protocol(),
            redis::ProtocolVersion::RESP3
        );
        let (info, checked) = direct("rediss://h:6379/2?protocol=resp3&insecure");
        assert!(is_insecure(&info), "{:?}", info.addr());
        assert!(!checked);
        assert_eq!(
            info.redis_settings().protocol(),
            redis::ProtocolVersion::RESP3
        );
        assert_eq!(info.redis_settings().db(), 2);
        let (info, checked) = direct("rediss://h:6379/?protocol=resp3");
        assert!(!is_insecure(&info));
        assert!(checked);
        assert_eq!(
            info.redis_settings().protocol(),
            redis::ProtocolVersion::RESP3
        );
    }

    #[test]
    fn insecure_is_only_turned_on_when_asked() {
        for on in ["?insecure", "?insecure=true", "?insecure=1", "#insecure"] {
            let (info, checked) = direct(&format!("rediss://h:6379/{on}"));
            assert!(is_insecure(&info), "{on}");
            assert!(!checked, "{on}");
        }
        for refused in ["false", "0", "no", "", "TRUE"] {
            let url = format!("rediss://h:6379/?insecure={refused}");
            let e = parse(&url).unwrap_err().to_string();
            assert!(e.contains(&format!("`insecure={refused}`")), "{url}: {e}");
        }
        let (info, checked) = direct("rediss://h:6379/");
        assert!(!is_insecure(&info));
        assert!(checked);
    }

    /// The master's database of a Sentinel URL.
    fn sentinel_db(url: &str) -> String {
        assert!(parse(url).unwrap().follows_failover(), "{url}");
        let (login, rest) = split_login(url);
        SentinelUrl::parse(login, rest).unwrap().db.to_string()
    }

    #[test]
    fn sentinel_paths_are_a_master_and_a_database_of_0_or_more() {
        assert_eq!(sentinel_db("redis+sentinel://a/m"), "0");
        assert_eq!(sentinel_db("redis+sentinel://a/m/"), "0");
        assert_eq!(sentinel_db("redis+sentinel://a/m/3"), "3");
        for bad in [
            "redis+sentinel://a/m/1/extra",
            "redis+sentinel://a/m/1/",
            "redis+sentinel://a/m/-1",
            "redis+sentinel://[::1/m",
            "redis+sentinel://[::1]x/m",
            "redis+sentinel://[::1]:port/m",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains("invalid Redis URL"), "{bad}: {e}");
        }
    }

    #[test]
    fn ipv6_sentinels_lose_their_brackets() {
        assert_eq!(sentinel_address("[::1]:26380"), Ok(("::1", 26380)));
        assert_eq!(
            sentinel_address("[fe80::2]"),
            Ok(("fe80::2", SENTINEL_PORT))
        );
        assert_eq!(sentinel_address("10.0.0.1:1"), Ok(("10.0.0.1", 1)));
        assert_eq!(sentinel_address("h"), Ok(("h", SENTINEL_PORT)));
        let e = parse("redis+sentinel://[::1]:26380,[fe80::2]/m").unwrap();
        assert_eq!(
            e.describe(),
            "master `m` of the Sentinels at [::1]:26380,[fe80::2]"
        );
    }
}
