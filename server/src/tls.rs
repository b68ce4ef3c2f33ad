//! A self-hosted CA and server certificate, and the rustls config that serves them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

pub fn tls_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("tls")
}

pub fn ca_path(data_dir: &Path) -> PathBuf {
    tls_dir(data_dir).join("ca.pem")
}

/// Create `DIR/tls/{ca.pem,ca.key,server.pem,server.key}` for `hosts`. Returns the CA path.
pub fn init(data_dir: &Path, hosts: &[String]) -> anyhow::Result<PathBuf> {
    let dir = tls_dir(data_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "fieldsync local CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key)?;

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(hosts.to_vec())?;
    params.distinguished_name.push(
        DnType::CommonName,
        hosts.first().map(String::as_str).unwrap_or("fieldsync"),
    );
    let cert = params.signed_by(&key, &ca_cert, &ca_key)?;

    write_private(&dir.join("ca.key"), &ca_key.serialize_pem())?;
    write_private(&dir.join("server.key"), &key.serialize_pem())?;
    std::fs::write(dir.join("ca.pem"), ca_cert.pem())?;
    std::fs::write(dir.join("server.pem"), cert.pem())?;
    Ok(dir.join("ca.pem"))
}

fn write_private(path: &Path, pem: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(pem.as_bytes())?;
    Ok(())
}

/// The rustls server config for `DIR/tls`, offering HTTP/2 and HTTP/1.1.
pub fn server_config(data_dir: &Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let dir = tls_dir(data_dir);
    let cert_path = dir.join("server.pem");
    let key_path = dir.join("server.key");
    let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(&cert_path).with_context(|| {
            format!(
                "no server certificate at {}: run `fieldsync-server tls init` first",
                cert_path.display()
            )
        })?,
    ))
    .collect::<Result<Vec<_>, _>>()?;
    let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(&key_path)
            .with_context(|| format!("opening {}", key_path.display()))?,
    ))?
    .with_context(|| format!("no private key in {}", key_path.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
