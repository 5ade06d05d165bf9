//! The rustls side of `tls_server_config`: certificate and key, client certificate
//! policies, protocol versions, cipher suites and curves, and the SAN check on client
//! certificates (`client_allowed_sans`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{ring, SupportedKxGroup, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
    SupportedCipherSuite, SupportedProtocolVersion,
};

use super::files::{read_bounded, resolve};
use super::schema::TlsServerConfig;
use super::WebConfigError;

type Invalid<'a> = &'a dyn Fn(&str, &str, String) -> WebConfigError;

/// Go's names of the TLS 1.2 suites rustls implements. Go applies `cipher_suites` to TLS
/// 1.2 only, and so do we: TLS 1.3 keeps its three suites.
pub const CIPHER_SUITES: [(&str, SupportedCipherSuite); 8] = [
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
        ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        ring::cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        ring::cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
        ring::cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        ring::cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

const CURVES: [(&str, Option<&dyn SupportedKxGroup>); 4] = [
    ("X25519", Some(ring::kx_group::X25519)),
    ("CurveP256", Some(ring::kx_group::SECP256R1)),
    ("CurveP384", Some(ring::kx_group::SECP384R1)),
    ("CurveP521", None),
];

/// `client_auth_type`, exporter-toolkit's names for Go's `tls.ClientAuthType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    const ALL: [ClientAuth; 5] = [
        ClientAuth::NoClientCert,
        ClientAuth::RequestClientCert,
        ClientAuth::RequireAnyClientCert,
        ClientAuth::VerifyClientCertIfGiven,
        ClientAuth::RequireAndVerifyClientCert,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ClientAuth::NoClientCert => "NoClientCert",
            ClientAuth::RequestClientCert => "RequestClientCert",
            ClientAuth::RequireAnyClientCert => "RequireAnyClientCert",
            ClientAuth::VerifyClientCertIfGiven => "VerifyClientCertIfGiven",
            ClientAuth::RequireAndVerifyClientCert => "RequireAndVerifyClientCert",
        }
    }

    /// The key's value; absent or empty is NoClientCert, as in exporter-toolkit.
    fn parse(value: Option<&str>, invalid: Invalid<'_>) -> Result<ClientAuth, WebConfigError> {
        let value = value.unwrap_or("");
        if value.is_empty() {
            return Ok(ClientAuth::NoClientCert);
        }
        ClientAuth::ALL
            .into_iter()
            .find(|auth| auth.name() == value)
            .ok_or_else(|| {
                let names: Vec<&str> = ClientAuth::ALL.iter().map(|a| a.name()).collect();
                invalid(
                    &key("client_auth_type"),
                    value,
                    format!("expected one of {}", names.join(", ")),
                )
            })
    }
}

/// The full name of a key of `tls_server_config`.
fn key(name: &str) -> String {
    format!("tls_server_config.{name}")
}

/// A TLS acceptor and the checks made once the handshake is done.
pub struct Tls {
    pub acceptor: tokio_rustls::TlsAcceptor,
    allowed_sans: Vec<ServerName<'static>>,
}

impl Tls {
    /// Builds from the config; also returns the files to watch for changes.
    pub(super) fn build(
        config: &TlsServerConfig,
        base: &Path,
        invalid: Invalid<'_>,
    ) -> Result<(Tls, Vec<PathBuf>), WebConfigError> {
        let mut watched = Vec::new();
        let client_auth = ClientAuth::parse(config.client_auth_type.as_deref(), invalid)?;
        let certs = certificates(config, base, invalid, &mut watched)?;
        let private_key = private_key(config, base, invalid, &mut watched)?;
        let provider = Arc::new(provider(config, invalid)?);
        let versions = versions(config, invalid)?;
        let verifier =
            client_verifier(config, client_auth, base, &provider, invalid, &mut watched)?;
        let allowed_sans = allowed_sans(config, client_auth, invalid)?;
        let builder = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|source| {
                invalid(
                    &key("min_version"),
                    config.min_version.as_deref().unwrap_or("TLS12"),
                    source.to_string(),
                )
            })?;
        let builder = match verifier {
            Some(verifier) => builder.with_client_cert_verifier(verifier),
            None => builder.with_no_client_auth(),
        };
        let (key_name, shown) = match &config.key_file {
            Some(path) => ("key_file", path.as_str()),
            None => ("key", "<secret>"),
        };
        let mut server = builder
            .with_single_cert(certs, private_key)
            .map_err(|source| {
                invalid(
                    &key(key_name),
                    shown,
                    format!("does not match the certificate, or unusable: {source}"),
                )
            })?;
        // exporter-toolkit's default, true, is the server's order.
        server.ignore_client_order = config.prefer_server_cipher_suites.unwrap_or(true);
        let tls = Tls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
            allowed_sans,
        };
        Ok((tls, watched))
    }

    /// After the handshake: the client certificate's SANs against `client_allowed_sans`.
    pub fn check_peer(&self, certificates: Option<&[CertificateDer<'_>]>) -> Result<(), String> {
        if self.allowed_sans.is_empty() {
            return Ok(());
        }
        let Some(leaf) = certificates.and_then(|c| c.first()) else {
            return Err("no client certificate".to_string());
        };
        let cert = webpki::EndEntityCert::try_from(leaf).map_err(|source| source.to_string())?;
        if self
            .allowed_sans
            .iter()
            .any(|san| cert.verify_is_valid_for_subject_name(san).is_ok())
        {
            Ok(())
        } else {
            Err("client certificate SAN not in client_allowed_sans".to_string())
        }
    }
}

/// `cert_file` or inline `cert`: one of the two, holding at least one certificate.
fn certificates(
    config: &TlsServerConfig,
    base: &Path,
    invalid: Invalid<'_>,
    watched: &mut Vec<PathBuf>,
) -> Result<Vec<CertificateDer<'static>>, WebConfigError> {
    let (name, shown, certs) = match (&config.cert_file, &config.cert) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                &key("cert"),
                "<inline>",
                "give cert_file or cert, not both".into(),
            ))
        }
        (None, None) => {
            return Err(invalid(
                &key("cert_file"),
                "",
                "missing: cert_file (or cert) is required with tls_server_config".into(),
            ))
        }
        (Some(path), None) => {
            let full = resolve(base, path);
            watched.push(full.clone());
            let certs =
                read_certs(&full).map_err(|reason| invalid(&key("cert_file"), path, reason))?;
            ("cert_file", path.as_str(), certs)
        }
        (None, Some(pem)) => {
            let certs = parse_certs(pem.as_bytes())
                .map_err(|reason| invalid(&key("cert"), "<inline>", reason))?;
            ("cert", "<inline>", certs)
        }
    };
    if certs.is_empty() {
        return Err(invalid(&key(name), shown, "no certificate in it".into()));
    }
    Ok(certs)
}

/// `key_file` or inline `key`: one of the two.
fn private_key(
    config: &TlsServerConfig,
    base: &Path,
    invalid: Invalid<'_>,
    watched: &mut Vec<PathBuf>,
) -> Result<PrivateKeyDer<'static>, WebConfigError> {
    match (&config.key_file, &config.key) {
        (Some(_), Some(_)) => Err(invalid(
            &key("key"),
            "<secret>",
            "give key_file or key, not both".into(),
        )),
        (None, None) => Err(invalid(
            &key("key_file"),
            "",
            "missing: key_file (or key) is required with tls_server_config".into(),
        )),
        (Some(path), None) => {
            let full = resolve(base, path);
            watched.push(full.clone());
            let bytes = read_bounded(&full).map_err(|reason| {
                invalid(&key("key_file"), path, format!("cannot read: {reason}"))
            })?;
            PrivateKeyDer::from_pem_slice(&bytes).map_err(|source| {
                invalid(
                    &key("key_file"),
                    path,
                    format!("no PEM private key read: {source}"),
                )
            })
        }
        (None, Some(pem)) => PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|source| {
            invalid(
                &key("key"),
                "<secret>",
                format!("not a PEM private key: {source}"),
            )
        }),
    }
}

/// rustls' ring provider narrowed to `cipher_suites` (TLS 1.2 only; TLS 1.3 keeps its
/// three) and `curve_preferences`.
fn provider(
    config: &TlsServerConfig,
    invalid: Invalid<'_>,
) -> Result<rustls::crypto::CryptoProvider, WebConfigError> {
    let mut provider = ring::default_provider();
    if !config.cipher_suites.is_empty() {
        let mut suites: Vec<SupportedCipherSuite> = ring::DEFAULT_CIPHER_SUITES
            .iter()
            .filter(|s| s.tls13().is_some())
            .copied()
            .collect();
        for name in &config.cipher_suites {
            let Some((_, suite)) = CIPHER_SUITES.iter().find(|(n, _)| n == name) else {
                let known: Vec<&str> = CIPHER_SUITES.iter().map(|(n, _)| *n).collect();
                return Err(invalid(
                    &key("cipher_suites"),
                    name,
                    format!("not supported by rustls; supported: {}", known.join(", ")),
                ));
            };
            suites.push(*suite);
        }
        provider.cipher_suites = suites;
    }
    if !config.curve_preferences.is_empty() {
        let mut groups = Vec::new();
        for name in &config.curve_preferences {
            let reason = match CURVES.iter().find(|(n, _)| n == name) {
                Some((_, Some(group))) => {
                    groups.push(*group);
                    continue;
                }
                Some((_, None)) => "not supported by rustls",
                None => "unknown curve",
            };
            return Err(invalid(
                &key("curve_preferences"),
                name,
                format!("{reason}; supported: X25519, CurveP256, CurveP384"),
            ));
        }
        provider.kx_groups = groups;
    }
    Ok(provider)
}

/// The protocol versions from `min_version` to `max_version`.
fn versions(
    config: &TlsServerConfig,
    invalid: Invalid<'_>,
) -> Result<Vec<&'static SupportedProtocolVersion>, WebConfigError> {
    let min = version(
        config.min_version.as_deref(),
        "TLS12",
        &key("min_version"),
        invalid,
    )?;
    let max = version(
        config.max_version.as_deref(),
        "TLS13",
        &key("max_version"),
        invalid,
    )?;
    if min > max {
        return Err(invalid(
            &key("max_version"),
            config.max_version.as_deref().unwrap_or(""),
            "below min_version".into(),
        ));
    }
    Ok(
        [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| (min..=max).contains(v))
            .map(|(_, v)| v)
            .collect(),
    )
}

/// The verifier `client_auth` asks for, with the CAs of `client_ca_file` where it checks
/// them; `None` for NoClientCert.
fn client_verifier(
    config: &TlsServerConfig,
    client_auth: ClientAuth,
    base: &Path,
    provider: &Arc<rustls::crypto::CryptoProvider>,
    invalid: Invalid<'_>,
    watched: &mut Vec<PathBuf>,
) -> Result<Option<Arc<dyn ClientCertVerifier>>, WebConfigError> {
    let ca_file = config.client_ca_file.as_deref().unwrap_or("");
    let roots = match &config.client_ca_file {
        Some(path) => Some(client_roots(base, path, invalid, watched)?),
        None => None,
    };
    let any = |mandatory| -> Arc<dyn ClientCertVerifier> {
        Arc::new(AnyClientCert {
            mandatory,
            algorithms: provider.signature_verification_algorithms,
        })
    };
    let builder = match client_auth {
        ClientAuth::NoClientCert if roots.is_some() => {
            return Err(invalid(
                &key("client_ca_file"),
                ca_file,
                "client CAs configured without a client_auth_type that uses them".into(),
            ))
        }
        ClientAuth::NoClientCert => return Ok(None),
        ClientAuth::RequestClientCert => return Ok(Some(any(false))),
        ClientAuth::RequireAnyClientCert => return Ok(Some(any(true))),
        ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert => {
            let roots = roots.ok_or_else(|| {
                invalid(
                    &key("client_ca_file"),
                    "",
                    format!(
                        "missing: required by client_auth_type {}",
                        client_auth.name()
                    ),
                )
            })?;
            WebPkiClientVerifier::builder_with_provider(roots, Arc::clone(provider))
        }
    };
    let builder = if client_auth == ClientAuth::VerifyClientCertIfGiven {
        builder.allow_unauthenticated()
    } else {
        builder
    };
    let verifier = builder
        .build()
        .map_err(|source| invalid(&key("client_ca_file"), ca_file, source.to_string()))?;
    Ok(Some(verifier))
}

/// The CA certificates of `client_ca_file`.
fn client_roots(
    base: &Path,
    path: &str,
    invalid: Invalid<'_>,
    watched: &mut Vec<PathBuf>,
) -> Result<Arc<RootCertStore>, WebConfigError> {
    let full = resolve(base, path);
    watched.push(full.clone());
    let mut roots = RootCertStore::empty();
    for cert in read_certs(&full).map_err(|reason| invalid(&key("client_ca_file"), path, reason))? {
        roots.add(cert).map_err(|source| {
            invalid(
                &key("client_ca_file"),
                path,
                format!("not a CA certificate: {source}"),
            )
        })?;
    }
    Ok(Arc::new(roots))
}

/// `client_allowed_sans`, which only a verified client certificate can be held to.
fn allowed_sans(
    config: &TlsServerConfig,
    client_auth: ClientAuth,
    invalid: Invalid<'_>,
) -> Result<Vec<ServerName<'static>>, WebConfigError> {
    if !config.client_allowed_sans.is_empty()
        && client_auth != ClientAuth::RequireAndVerifyClientCert
    {
        return Err(invalid(
            &key("client_allowed_sans"),
            &config.client_allowed_sans.join(","),
            "needs client_auth_type RequireAndVerifyClientCert".into(),
        ));
    }
    config
        .client_allowed_sans
        .iter()
        .map(|san| {
            ServerName::try_from(san.clone()).map_err(|source| {
                invalid(
                    &key("client_allowed_sans"),
                    san,
                    format!("not a DNS name or IP address: {source}"),
                )
            })
        })
        .collect()
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read_bounded(path).map_err(|reason| format!("cannot read: {reason}"))?;
    parse_certs(&bytes)
}

fn parse_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| format!("not a PEM certificate: {source}"))
}

fn version(
    value: Option<&str>,
    default: &str,
    key: &str,
    invalid: Invalid<'_>,
) -> Result<u8, WebConfigError> {
    match value.unwrap_or(default) {
        "TLS12" => Ok(12),
        "TLS13" => Ok(13),
        old @ ("TLS10" | "TLS11") => Err(invalid(
            key,
            old,
            "not supported by rustls: TLS12 is the oldest version".into(),
        )),
        other => Err(invalid(key, other, "expected TLS12 or TLS13".into())),
    }
}

/// RequestClientCert and RequireAnyClientCert: a certificate is asked for (and, for the
/// second, required) but not checked against any CA, as in Go. The handshake signature is
/// still verified, so the client holds the certificate's key.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
