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

use super::load::resolve;
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
        let key_name = |k: &str| format!("tls_server_config.{k}");
        let mut watched = Vec::new();
        let (certs, key) = match (
            &config.cert_file,
            &config.cert,
            &config.key_file,
            &config.key,
        ) {
            (Some(_), Some(_), _, _) => {
                return Err(invalid(
                    &key_name("cert"),
                    "<inline>",
                    "give cert_file or cert, not both".into(),
                ))
            }
            (_, _, Some(_), Some(_)) => {
                return Err(invalid(
                    &key_name("key"),
                    "<secret>",
                    "give key_file or key, not both".into(),
                ))
            }
            (None, None, _, _) => {
                return Err(invalid(
                    &key_name("cert_file"),
                    "",
                    "missing: cert_file (or cert) is required with tls_server_config".into(),
                ))
            }
            (_, _, None, None) => {
                return Err(invalid(
                    &key_name("key_file"),
                    "",
                    "missing: key_file (or key) is required with tls_server_config".into(),
                ))
            }
            (cert_file, cert, key_file, key) => {
                let certs: Vec<CertificateDer<'static>> = match (cert_file, cert) {
                    (Some(path), _) => {
                        let full = resolve(base, path);
                        watched.push(full.clone());
                        read_certs(&full)
                            .map_err(|reason| invalid(&key_name("cert_file"), path, reason))?
                    }
                    (None, Some(pem)) => CertificateDer::pem_slice_iter(pem.as_bytes())
                        .collect::<Result<_, _>>()
                        .map_err(|source| {
                            invalid(
                                &key_name("cert"),
                                "<inline>",
                                format!("not a PEM certificate: {source}"),
                            )
                        })?,
                    (None, None) => Vec::new(),
                };
                if certs.is_empty() {
                    let shown = cert_file.as_deref().unwrap_or("<inline>");
                    return Err(invalid(
                        &key_name(if cert_file.is_some() {
                            "cert_file"
                        } else {
                            "cert"
                        }),
                        shown,
                        "no certificate in it".into(),
                    ));
                }
                let key = match (key_file, key) {
                    (Some(path), _) => {
                        let full = resolve(base, path);
                        watched.push(full.clone());
                        PrivateKeyDer::from_pem_file(&full).map_err(|source| {
                            invalid(
                                &key_name("key_file"),
                                path,
                                format!("no PEM private key read: {source}"),
                            )
                        })?
                    }
                    (None, Some(pem)) => {
                        PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|source| {
                            invalid(
                                &key_name("key"),
                                "<secret>",
                                format!("not a PEM private key: {source}"),
                            )
                        })?
                    }
                    (None, None) => {
                        return Err(invalid(&key_name("key_file"), "", "missing".into()))
                    }
                };
                (certs, key)
            }
        };

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
                        &key_name("cipher_suites"),
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
                match CURVES.iter().find(|(n, _)| n == name) {
                    Some((_, Some(group))) => groups.push(*group),
                    Some((_, None)) => {
                        return Err(invalid(
                            &key_name("curve_preferences"),
                            name,
                            "not supported by rustls; supported: X25519, CurveP256, CurveP384"
                                .into(),
                        ))
                    }
                    None => {
                        return Err(invalid(
                            &key_name("curve_preferences"),
                            name,
                            "unknown curve; supported: X25519, CurveP256, CurveP384".into(),
                        ))
                    }
                }
            }
            provider.kx_groups = groups;
        }
        let min = version(
            config.min_version.as_deref(),
            "TLS12",
            &key_name("min_version"),
            invalid,
        )?;
        let max = version(
            config.max_version.as_deref(),
            "TLS13",
            &key_name("max_version"),
            invalid,
        )?;
        if min > max {
            return Err(invalid(
                &key_name("max_version"),
                config.max_version.as_deref().unwrap_or(""),
                "below min_version".into(),
            ));
        }
        let versions: Vec<&'static SupportedProtocolVersion> =
            [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
                .into_iter()
                .filter(|(v, _)| (min..=max).contains(v))
                .map(|(_, v)| v)
                .collect();
        let provider = Arc::new(provider);

        let auth_type = config.client_auth_type.as_deref().unwrap_or("NoClientCert");
        let roots = match &config.client_ca_file {
            Some(path) => {
                let full = resolve(base, path);
                watched.push(full.clone());
                let mut roots = RootCertStore::empty();
                for cert in read_certs(&full)
                    .map_err(|reason| invalid(&key_name("client_ca_file"), path, reason))?
                {
                    roots.add(cert).map_err(|source| {
                        invalid(
                            &key_name("client_ca_file"),
                            path,
                            format!("not a CA certificate: {source}"),
                        )
                    })?;
                }
                Some(Arc::new(roots))
            }
            None => None,
        };
        let ca_needed = |roots: Option<Arc<RootCertStore>>| {
            roots.ok_or_else(|| {
                invalid(
                    &key_name("client_ca_file"),
                    "",
                    format!("missing: required by client_auth_type {auth_type}"),
                )
            })
        };
        let verifier: Option<Arc<dyn ClientCertVerifier>> = match auth_type {
            "NoClientCert" | "" => {
                if roots.is_some() {
                    return Err(invalid(&key_name("client_ca_file"), config.client_ca_file.as_deref().unwrap_or(""), "client CAs configured without a client_auth_type that uses them".into()));
                }
                None
            }
            "RequestClientCert" => Some(Arc::new(AnyClientCert { mandatory: false, algorithms: provider.signature_verification_algorithms })),
            "RequireAnyClientCert" => Some(Arc::new(AnyClientCert { mandatory: true, algorithms: provider.signature_verification_algorithms })),
            "VerifyClientCertIfGiven" => Some(
                WebPkiClientVerifier::builder_with_provider(ca_needed(roots)?, Arc::clone(&provider))
                    .allow_unauthenticated()
                    .build()
                    .map_err(|source| invalid(&key_name("client_ca_file"), config.client_ca_file.as_deref().unwrap_or(""), source.to_string()))?,
            ),
            "RequireAndVerifyClientCert" => Some(
                WebPkiClientVerifier::builder_with_provider(ca_needed(roots)?, Arc::clone(&provider))
                    .build()
                    .map_err(|source| invalid(&key_name("client_ca_file"), config.client_ca_file.as_deref().unwrap_or(""), source.to_string()))?,
            ),
            other => {
                return Err(invalid(&key_name("client_auth_type"), other, "expected one of NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert".into()))
            }
        };
        if !config.client_allowed_sans.is_empty() && auth_type != "RequireAndVerifyClientCert" {
            return Err(invalid(
                &key_name("client_allowed_sans"),
                &config.client_allowed_sans.join(","),
                "needs client_auth_type RequireAndVerifyClientCert".into(),
            ));
        }
        let allowed_sans = config
            .client_allowed_sans
            .iter()
            .map(|san| {
                ServerName::try_from(san.clone()).map_err(|source| {
                    invalid(
                        &key_name("client_allowed_sans"),
                        san,
                        format!("not a DNS name or IP address: {source}"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;

        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&versions)
            .map_err(|source| {
                invalid(
                    &key_name("min_version"),
                    config.min_version.as_deref().unwrap_or("TLS12"),
                    source.to_string(),
                )
            })?;
        let builder = match verifier {
            Some(verifier) => builder.with_client_cert_verifier(verifier),
            None => builder.with_no_client_auth(),
        };
        let shown = config.key_file.as_deref().unwrap_or("<secret>");
        let mut server = builder.with_single_cert(certs, key).map_err(|source| {
            invalid(
                &key_name(if config.key_file.is_some() {
                    "key_file"
                } else {
                    "key"
                }),
                shown,
                format!("does not match the certificate, or unusable: {source}"),
            )
        })?;
        // exporter-toolkit's default, true, is the server's order.
        server.ignore_client_order = config.prefer_server_cipher_suites.unwrap_or(true);
        Ok((
            Tls {
                acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
                allowed_sans,
            },
            watched,
        ))
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

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_file_iter(path)
        .map_err(|source| format!("cannot read: {source}"))?
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
