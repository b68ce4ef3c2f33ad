//! Photo test material: JPEGs with real EXIF blocks (capture time, GPS), made in memory to
//! any size, and views of what the server holds.

use std::path::Path;

use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

/// Capture time written into every test JPEG's EXIF: 2024-05-01 10:22:33 (no offset, so UTC).
pub const EXIF_TAKEN_AT_MS: u64 = 1_714_558_953_000;
/// GPS written into every test JPEG: 51°30'26.5" N, 0°7'39" W.
pub const EXIF_LAT: f64 = 51.0 + 30.0 / 60.0 + 26.5 / 3600.0;
pub const EXIF_LON: f64 = -(7.0 / 60.0 + 39.0 / 3600.0);

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn le16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_le_bytes());
}

fn le32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}

fn entry(v: &mut Vec<u8>, tag: u16, ty: u16, count: u32, value: u32) {
    le16(v, tag);
    le16(v, ty);
    le32(v, count);
    le32(v, value);
}

/// A little-endian TIFF block with IFD0 -> Exif IFD (DateTimeOriginal) and GPS IFD.
fn exif_tiff() -> Vec<u8> {
    const ASCII: u16 = 2;
    const LONG: u16 = 4;
    const RATIONAL: u16 = 5;
    let mut t = Vec::new();
    t.extend_from_slice(b"II*\0");
    le32(&mut t, 8);
    // IFD0 at 8: two pointers.
    le16(&mut t, 2);
    entry(&mut t, 0x8769, LONG, 1, 38);
    entry(&mut t, 0x8825, LONG, 1, 76);
    le32(&mut t, 0);
    // Exif IFD at 38: DateTimeOriginal, its string at 56.
    le16(&mut t, 1);
    entry(&mut t, 0x9003, ASCII, 20, 56);
    le32(&mut t, 0);
    t.extend_from_slice(b"2024:05:01 10:22:33\0");
    // GPS IFD at 76: refs inline, rationals at 130 and 154.
    le16(&mut t, 4);
    entry(&mut t, 1, ASCII, 2, u32::from_le_bytes(*b"N\0\0\0"));
    entry(&mut t, 2, RATIONAL, 3, 130);
    entry(&mut t, 3, ASCII, 2, u32::from_le_bytes(*b"W\0\0\0"));
    entry(&mut t, 4, RATIONAL, 3, 154);
    le32(&mut t, 0);
    for (n, d) in [(51, 1), (30, 1), (265, 10), (0, 1), (7, 1), (39, 1)] {
        le32(&mut t, n);
        le32(&mut t, d);
    }
    assert_eq!(t.len(), 178);
    t
}

/// A JPEG-shaped file of exactly `size` bytes: SOI, an EXIF APP1 segment, pseudo-random
/// scan data (seeded, so each seed is a different photo), EOI. Not decodable as an
/// image, which the agent never needs; `real_jpeg` is for thumbnails.
pub fn jpeg(size: usize, seed: u64) -> Vec<u8> {
    let tiff = exif_tiff();
    let mut v = vec![0xff, 0xd8, 0xff, 0xe1];
    let seg_len = (2 + 6 + tiff.len()) as u16;
    v.extend_from_slice(&seg_len.to_be_bytes());
    v.extend_from_slice(b"Exif\0\0");
    v.extend_from_slice(&tiff);
    // Start of scan, so EXIF readers stop looking for more segments here.
    v.extend_from_slice(&[0xff, 0xda, 0x00, 0x02]);
    assert!(
        size >= v.len() + 2,
        "a test JPEG needs at least {} bytes",
        v.len() + 2
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    while v.len() < size - 2 {
        // No 0xff in scan data: it would read as a marker.
        v.push(rng.gen_range(0..0xff));
    }
    v.extend_from_slice(&[0xff, 0xd9]);
    v
}

/// A real, decodable JPEG (a gradient), for thumbnails.
pub fn real_jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, 128])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&img)
        .unwrap();
    out
}

/// Files under the server's blob store: (verified blobs, staged uploads).
pub fn server_blob_files(server_dir: &Path) -> (Vec<String>, Vec<String>) {
    let root = server_dir.join("blobs");
    let mut verified = Vec::new();
    if let Ok(a) = std::fs::read_dir(root.join("sha256")) {
        for a in a.flatten() {
            for b in std::fs::read_dir(a.path()).unwrap().flatten() {
                for f in std::fs::read_dir(b.path()).unwrap().flatten() {
                    verified.push(f.file_name().to_string_lossy().into_owned());
                }
            }
        }
    }
    let staged = std::fs::read_dir(root.join("staging"))
        .map(|d| {
            d.flatten()
                .map(|f| f.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    verified.sort();
    (verified, staged)
}

/// Every file anywhere under the server's data dir whose name is not one the server
/// makes itself: nothing a client sends may become a path.
pub fn unexpected_server_files(server_dir: &Path) -> Vec<String> {
    fn walk(p: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(p).unwrap().flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path.display().to_string());
            }
        }
    }
    let mut all = Vec::new();
    walk(server_dir, &mut all);
    all.into_iter()
        .filter(|p| p.contains("..") || p.contains("passwd") || p.ends_with("/x"))
        .collect()
}

/// A work order assigned to `assignee`, created by the dispatcher client `api`.
pub fn order_for(api: &crate::Api, assignee: &str) -> String {
    api.create_order(serde_json::json!({
        "description": "Chiller 7 tripping; photograph the nameplate",
        "priority": 2,
        "assignee": assignee,
    }))
}

/// Write the agent's settings file (DATA_DIR/agent.toml).
pub fn agent_settings(agent: &crate::Agent, toml: &str) {
    std::fs::create_dir_all(&agent.dir).unwrap();
    std::fs::write(agent.dir.join("agent.toml"), toml).unwrap();
}
