//! Certificates for the TLS tests, made by openssl in a temp dir removed on drop: a CA, a
//! server certificate for 127.0.0.1, a client certificate (SAN scraper.example) from the
//! same CA, and a stranger's client certificate from another CA.

use std::path::PathBuf;
use std::process::Command;

pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("sockdiag-pki-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let pki = Pki { dir };
        pki.ca("ca");
        pki.ca("other-ca");
        pki.issue(
            "server",
            "ca",
            1001,
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        );
        pki.issue(
            "client",
            "ca",
            2001,
            "subjectAltName=DNS:scraper.example\nextendedKeyUsage=clientAuth\n",
        );
        pki.issue(
            "stranger",
            "other-ca",
            3001,
            "subjectAltName=DNS:scraper.example\nextendedKeyUsage=clientAuth\n",
        );
        pki
    }

    pub fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn ca(&self, name: &str) {
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
        ]);
    }

    /// Issues `name.crt`/`name.key` from CA `ca` with `serial` and extensions `ext`.
    pub fn issue(&self, name: &str, ca: &str, serial: u32, ext: &str) {
        std::fs::write(self.dir.join(format!("{name}.ext")), ext).unwrap();
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key.new"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-set_serial",
            &serial.to_string(),
            "-days",
            "2",
            "-out",
            &format!("{name}.crt.new"),
            "-extfile",
            &format!("{name}.ext"),
        ]);
        // Renamed into place, key first: a reader never sees half a file.
        for file in [format!("{name}.key"), format!("{name}.crt")] {
            std::fs::rename(self.dir.join(format!("{file}.new")), self.dir.join(&file)).unwrap();
        }
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
