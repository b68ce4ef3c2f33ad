//! Which files may be photos: recognised by their first bytes, never by their name, so a
//! renamed executable is not a JPEG. Shared by the agent (at import) and the server (on
//! the first chunk of an upload).

/// Bytes needed to recognise a type.
pub const SNIFF_BYTES: usize = 16;

/// HEIF brands of still images (HEIC from phones and cameras, and the generic HEIF ones).
const HEIF_BRANDS: &[&[u8; 4]] = &[
    b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1",
];

/// The MIME type of an allowed file (JPEG, PNG, HEIC, PDF), from its first bytes.
pub fn sniff(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if head.starts_with(b"%PDF-") {
        Some("application/pdf")
    } else if head.len() >= 12
        && &head[4..8] == b"ftyp"
        && HEIF_BRANDS.iter().any(|b| &head[8..12] == *b)
    {
        Some("image/heic")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlist_is_by_content() {
        assert_eq!(sniff(b"\xff\xd8\xff\xe1\0\0Exif"), Some("image/jpeg"));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), Some("image/png"));
        assert_eq!(sniff(b"%PDF-1.7\n"), Some("application/pdf"));
        assert_eq!(sniff(b"\0\0\0\x18ftypheic\0\0\0\0"), Some("image/heic"));
        assert_eq!(
            sniff(b"\0\0\0\x18ftypavif\0\0\0\0"),
            None,
            "AVIF is not HEIC"
        );
        assert_eq!(sniff(b"MZ\x90\0\x03\0\0\0"), None, "an .exe renamed .jpg");
        assert_eq!(sniff(b"\xff\xd8"), None, "too short to tell");
    }
}
