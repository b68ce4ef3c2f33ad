//! Passwords (argon2) and bearer tokens (random, stored as SHA-256 so a database leak does
//! not leak working tokens).

use argon2::password_hash::rand_core::OsRng;
use std::sync::Mutex;

use argon2::password_hash::{Output, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::RngCore;
use sha2::{Digest, Sha256};

pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing password: {e}"))
}

/// Argon2 working memory kept for reuse, one buffer per concurrent check. Each check needs
/// ~19 MiB; allocating it afresh every time leaves glibc's arenas holding freed buffers
/// that are never returned, and a burst of logins grew the server by gigabytes.
static WORK_MEMORY: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());
/// Password checks running at once, and buffers kept between checks.
pub const PASSWORD_CHECKS_CONCURRENT_MAX: usize = 2;
/// Every password check (API and console) holds one of these permits.
pub static PASSWORD_CHECKS: tokio::sync::Semaphore =
    tokio::sync::Semaphore::const_new(PASSWORD_CHECKS_CONCURRENT_MAX);

pub fn verify_password(password: &str, hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
    ) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let blocks = params.block_count();
    let mut memory = {
        let mut pool = WORK_MEMORY.lock().unwrap_or_else(|e| e.into_inner());
        match pool.iter().position(|m| m.len() == blocks) {
            Some(i) => pool.swap_remove(i),
            None => vec![Block::default(); blocks],
        }
    };
    let mut out = vec![0u8; expected.len()];
    let computed = Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut memory[..])
        .is_ok();
    {
        let mut pool = WORK_MEMORY.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < PASSWORD_CHECKS_CONCURRENT_MAX {
            pool.push(memory);
        }
    }
    // `Output`'s equality is constant-time.
    computed && Output::new(&out).is_ok_and(|o| o == expected)
}

/// A new bearer token: 256 random bits.
pub fn new_token() -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    format!("fs_{}", hex::encode(b))
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_themselves() {
        let h = hash_password("s3cret").unwrap();
        assert!(verify_password("s3cret", &h));
        assert!(!verify_password("s3cres", &h));
        assert!(!verify_password("s3cret", "not a hash"));
    }

    #[test]
    fn tokens_are_unique_and_hash_stably() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_ne!(token_hash(&a), token_hash(&b));
    }
}
