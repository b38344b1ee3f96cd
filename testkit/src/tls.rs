//! A private certificate authority per test, made with `openssl`: a CA, a
//! server certificate for `localhost` and `127.0.0.1` and a client
//! certificate, all signed by it, in a directory removed on drop.
//!
//! ```no_run
//! # use tidings_testkit::{RedisOptions, RedisServer, TestCa};
//! let ca = TestCa::generate();
//! let server = RedisServer::with_options(RedisOptions::default().tls(&ca));
//! assert!(server.url().starts_with("rediss://"));
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The names of the server certificate of [`TestCa::generate`].
const SERVER_NAMES: &str = "DNS:localhost,IP:127.0.0.1";

/// A CA and the certificates it signed, as PEM files in a directory of
/// their own.
#[derive(Debug)]
pub struct TestCa {
    dir: PathBuf,
}

impl TestCa {
    /// Makes a new CA (P-256 keys, valid two days) with a server
    /// certificate (`localhost`, `127.0.0.1`) and a client certificate.
    ///
    /// # Panics
    ///
    /// When `openssl` is missing (the message says so: a test must not
    /// skip) or one of its commands fails.
    #[track_caller]
    pub fn generate() -> TestCa {
        match Self::try_generate() {
            Ok(ca) => ca,
            Err(e) => panic!("{e}"),
        }
    }

    /// Makes a new CA, or says why it could not.
    pub fn try_generate() -> Result<TestCa, String> {
        Self::try_generate_for(SERVER_NAMES)
    }

    /// Makes a new CA whose server certificate names only `names`, an
    /// OpenSSL `subjectAltName` value (`DNS:localhost`), to test that a
    /// client checks the name it connects to against it.
    ///
    /// # Panics
    ///
    /// As [`TestCa::generate`].
    #[track_caller]
    pub fn generate_for(names: &str) -> TestCa {
        match Self::try_generate_for(names) {
            Ok(ca) => ca,
            Err(e) => panic!("{e}"),
        }
    }

    /// [`TestCa::generate_for`], or says why it could not.
    pub fn try_generate_for(names: &str) -> Result<TestCa, String> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tidings-ca-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let ca = TestCa { dir };
        ca.make(names)?;
        Ok(ca)
    }

    fn make(&self, names: &str) -> Result<(), String> {
        let key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        // A subject of its own, so that another test CA is another issuer.
        let subject = format!(
            "/CN=tidings test CA {}",
            self.dir.file_name().unwrap_or_default().to_string_lossy()
        );
        self.openssl(&[
            &["req", "-x509", "-new", "-nodes"][..],
            &key,
            &["-keyout", "ca.key", "-out", "ca.crt", "-days", "2"],
            &["-subj", &subject],
            &["-addext", "basicConstraints=critical,CA:TRUE"],
            &["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ])?;
        let server_san = format!("subjectAltName={names}\n");
        for (name, usage, san) in [
            ("server", "serverAuth", server_san.as_str()),
            ("client", "clientAuth", ""),
        ] {
            self.openssl(&[
                &["req", "-new", "-nodes"][..],
                &key,
                &["-keyout", &format!("{name}.key")],
                &["-out", &format!("{name}.csr")],
                &["-subj", &format!("/CN=tidings test {name}")],
            ])?;
            let ext = format!(
                "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage={usage}\n{san}"
            );
            std::fs::write(self.dir.join(format!("{name}.ext")), ext)
                .map_err(|e| format!("writing {name}.ext: {e}"))?;
            self.openssl(&[&[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &format!("{name}.crt"),
                "-extfile",
                &format!("{name}.ext"),
            ][..]])?;
        }
        Ok(())
    }

    fn openssl(&self, parts: &[&[&str]]) -> Result<(), String> {
        let args: Vec<&str> = parts.concat();
        let out = Command::new("openssl")
            .args(&args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => "`openssl` was not found on PATH; the TLS tests \
                    need it (Debian/Ubuntu: `apt-get install openssl`)"
                    .to_owned(),
                _ => format!("running openssl: {e}"),
            })?;
        if !out.status.success() {
            return Err(format!(
                "openssl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }

    /// The CA certificate (PEM).
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// The server certificate (PEM), for `localhost` and `127.0.0.1`.
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.crt")
    }

    /// The server's private key (PEM).
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }

    /// The client certificate (PEM).
    pub fn client_cert(&self) -> PathBuf {
        self.dir.join("client.crt")
    }

    /// The client's private key (PEM).
    pub fn client_key(&self) -> PathBuf {
        self.dir.join("client.key")
    }

    /// The directory the files are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
