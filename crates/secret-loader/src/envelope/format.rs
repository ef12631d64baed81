//! The AWS Encryption SDK message format, version 2.0, for the two committing suites:
//! `AES_256_GCM_HKDF_SHA512_COMMIT_KEY` (0x0478) and
//! `AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384` (0x0578), framed content.
//!
//! Pure bytes in, bytes out: no I/O, no key provider. Section names in comments are those of
//! the `aws-encryption-sdk-specification` repository (`data-format/`, `framework/`,
//! `client-apis/`). Every length is read before anything is allocated for it and checked
//! against what is left and against [`Limits`]; no input makes this panic.

use std::collections::BTreeMap;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::hkdf::{HKDF_SHA512, KeyType, Salt};
use aws_lc_rs::signature::{
    ECDSA_P384_SHA384_ASN1, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use zeroize::Zeroizing;

/// Encryption-context key of the signed suite's verification key (base64 of the compressed
/// point): `framework/structures.md`, reserved by the format.
pub(crate) const PUBLIC_KEY_CONTEXT: &str = "aws-crypto-public-key";
/// The frame length the official SDKs use by default (`client-apis/encrypt.md`, frame length).
pub(crate) const FRAME_LENGTH: u32 = 4096;

const VERSION_2: u8 = 0x02;
const CONTENT_FRAMED: u8 = 0x02;
/// Non-framed content: written by older SDKs and by `aws-encryption-cli --frame-length 0`;
/// read here, never written (`client-apis/encrypt.md`: implementations MUST NOT encrypt it).
const CONTENT_NON_FRAMED: u8 = 0x01;
const MESSAGE_ID_LEN: usize = 32;
const IV_LEN: usize = 12;
const TAG_LEN: usize = 16;
const KEY_LEN: usize = 32;
const COMMITMENT_LEN: usize = 32;
/// `data-format/message-body.md`, sequence number end.
const FINAL_FRAME_MARKER: u32 = 0xFFFF_FFFF;
/// `data-format/message-body-aad.md`, body AAD content.
const FRAME_AAD: &[u8] = b"AWSKMSEncryptionClient Frame";
const FINAL_FRAME_AAD: &[u8] = b"AWSKMSEncryptionClient Final Frame";
const SINGLE_BLOCK_AAD: &[u8] = b"AWSKMSEncryptionClient Single Block";

/// The committing suites (`framework/algorithm-suites.md`, supported algorithm suites).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Suite {
    /// 0x0478: AES-256-GCM, HKDF-SHA512, key commitment.
    Committing,
    /// 0x0578: the same with an ECDSA P-384 / SHA-384 signature.
    CommittingSigned,
}

impl Suite {
    pub(crate) fn id(self) -> u16 {
        match self {
            Self::Committing => 0x0478,
            Self::CommittingSigned => 0x0578,
        }
    }

    fn from_id(id: u16) -> Result<Self, FormatError> {
        match id {
            0x0478 => Ok(Self::Committing),
            0x0578 => Ok(Self::CommittingSigned),
            other => Err(FormatError::Unsupported(format!(
                "algorithm suite {other:#06x} (only the committing suites 0x0478 and 0x0578 are read)"
            ))),
        }
    }

    pub(crate) fn signed(self) -> bool {
        self == Self::CommittingSigned
    }
}

/// Why a message can't be written or read. Never carries plaintext or key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FormatError {
    /// A version, suite or content type this reader refuses (v1, non-committing, non-framed).
    Unsupported(String),
    /// The bytes are not a well-formed message (truncated, a field out of range, trailing
    /// bytes, over a limit).
    Malformed(String),
    /// A check failed: key commitment, header authentication, a frame, the signature.
    Authentication(&'static str),
    /// The message may authenticate, but breaks a rule of the specification or of this
    /// reader's policy (a suite without its verification key, an unsigned message where
    /// signed ones are required, a reserved provider id).
    Rule(&'static str),
}

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unsupported(what) => write!(f, "unsupported message: {what}"),
            Self::Malformed(what) => write!(f, "malformed message: {what}"),
            Self::Authentication(what) => write!(f, "message does not authenticate: {what}"),
            Self::Rule(what) => write!(f, "message refused: {what}"),
        }
    }
}

impl std::error::Error for FormatError {}

fn malformed(what: impl Into<String>) -> FormatError {
    FormatError::Malformed(what.into())
}

/// Bounds checked while reading, before anything is allocated.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Most encrypted data keys a header may list (`client-apis/decrypt.md`, max EDKs).
    pub(crate) max_encrypted_data_keys: usize,
    /// Largest frame length accepted.
    pub(crate) max_frame_length: u32,
    /// Largest whole message accepted.
    pub(crate) max_message_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_encrypted_data_keys: 4,
            max_frame_length: 1024 * 1024,
            max_message_bytes: 2 * 1024 * 1024,
        }
    }
}

/// An encrypted data key (`framework/structures.md`, encrypted data key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EncryptedDataKey {
    pub(crate) provider_id: String,
    pub(crate) provider_info: Vec<u8>,
    pub(crate) ciphertext: Vec<u8>,
}

/// A parsed header (`data-format/message-header.md`, header body version 2.0).
#[derive(Debug, Clone)]
pub(crate) struct Header {
    pub(crate) suite: Suite,
    pub(crate) message_id: [u8; MESSAGE_ID_LEN],
    pub(crate) context: BTreeMap<String, String>,
    pub(crate) encrypted_data_keys: Vec<EncryptedDataKey>,
    /// The frame length of framed content; 0 for non-framed content.
    pub(crate) frame_length: u32,
    commitment: [u8; COMMITMENT_LEN],
    /// The serialized header body: the header authentication's AAD.
    body: Vec<u8>,
    /// The header authentication tag.
    tag: [u8; TAG_LEN],
}

/// The encryption context serialized (`framework/structures.md`, serialization): empty for an
/// empty context, else a count and the pairs sorted by key bytes.
pub(crate) fn serialize_context(
    context: &BTreeMap<String, String>,
) -> Result<Vec<u8>, FormatError> {
    if context.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    out.extend_from_slice(&u16_len(context.len(), "encryption context pairs")?.to_be_bytes());
    // BTreeMap<String, _> orders by the keys' UTF-8 bytes, as the specification sorts them.
    for (key, value) in context {
        for text in [key, value] {
            out.extend_from_slice(
                &u16_len(text.len(), "an encryption context entry")?.to_be_bytes(),
            );
            out.extend_from_slice(text.as_bytes());
        }
    }
    Ok(out)
}

fn u16_len(len: usize, what: &str) -> Result<u16, FormatError> {
    u16::try_from(len).map_err(|_| malformed(format!("{what} is longer than 65535")))
}

/// The derived encryption key and the commitment key
/// (`framework/transitive-requirements.md`, HKDF encryption key and HKDF commit key):
/// one extract with the message ID as salt, two expands.
fn derive(
    suite: Suite,
    data_key: &[u8],
    message_id: &[u8; MESSAGE_ID_LEN],
) -> Result<(LessSafeKey, Zeroizing<[u8; COMMITMENT_LEN]>), FormatError> {
    struct Len(usize);
    impl KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let prk = Salt::new(HKDF_SHA512, message_id).extract(data_key);
    let fail = |_| malformed("key derivation failed");
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    let mut info = suite.id().to_be_bytes().to_vec();
    info.extend_from_slice(b"DERIVEKEY");
    prk.expand(&[&info], Len(KEY_LEN))
        .and_then(|okm| okm.fill(&mut key[..]))
        .map_err(fail)?;
    let mut commitment = Zeroizing::new([0u8; COMMITMENT_LEN]);
    prk.expand(&[b"COMMITKEY"], Len(COMMITMENT_LEN))
        .and_then(|okm| okm.fill(&mut commitment[..]))
        .map_err(fail)?;
    let key = UnboundKey::new(&AES_256_GCM, &key[..]).map_err(fail)?;
    Ok((LessSafeKey::new(key), commitment))
}

/// The IV of a frame: its sequence number, big-endian, padded to 12 bytes
/// (`client-apis/encrypt.md`, construct a frame); 0 for the header authentication.
fn iv(sequence: u32) -> [u8; IV_LEN] {
    let mut iv = [0u8; IV_LEN];
    iv[IV_LEN - 4..].copy_from_slice(&sequence.to_be_bytes());
    iv
}

/// `data-format/message-body-aad.md`: message ID, content string, sequence number, length.
fn body_aad(message_id: &[u8], content: &[u8], sequence: u32, length: u64) -> Vec<u8> {
    let mut aad = Vec::with_capacity(message_id.len() + content.len() + 12);
    aad.extend_from_slice(message_id);
    aad.extend_from_slice(content);
    aad.extend_from_slice(&sequence.to_be_bytes());
    aad.extend_from_slice(&length.to_be_bytes());
    aad
}

/// A signing key for the signed suite and the context value of its verification key.
pub(crate) struct SigningKey {
    key: EcdsaKeyPair,
}

impl SigningKey {
    /// A fresh P-384 key pair (`framework/structures.md`, signing key).
    pub(crate) fn generate() -> Result<Self, FormatError> {
        let key = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_ASN1_SIGNING)
            .map_err(|_| malformed("cannot generate a signing key"))?;
        Ok(Self { key })
    }

    /// The verification key as the context holds it: base64 of the compressed point
    /// (`framework/transitive-requirements.md`, ECDSA).
    pub(crate) fn public_key_base64(&self) -> Result<String, FormatError> {
        use aws_lc_rs::encoding::{AsBigEndian, EcPublicKeyCompressedBin};
        let compressed: EcPublicKeyCompressedBin<'static> = self
            .key
            .public_key()
            .as_be_bytes()
            .map_err(|_| malformed("cannot encode the verification key"))?;
        Ok(aws_smithy_types::base64::encode(compressed.as_ref()))
    }
}

/// Writes a message (`client-apis/encrypt.md`): header, header authentication, frames of
/// `frame_length` (a plaintext that fills its last frame exactly gets an empty final frame
/// after it), and for the signed suite the footer. `context` is the whole encryption
/// context, the verification key included for the signed suite.
pub(crate) fn encrypt(
    suite: Suite,
    context: &BTreeMap<String, String>,
    encrypted_data_keys: &[EncryptedDataKey],
    data_key: &[u8],
    signing: Option<&SigningKey>,
    plaintext: &[u8],
    frame_length: u32,
) -> Result<Vec<u8>, FormatError> {
    if data_key.len() != KEY_LEN {
        return Err(malformed("the data key is not 32 bytes"));
    }
    if suite.signed() != signing.is_some() {
        return Err(malformed(
            "a signing key goes with the signed suite, and only with it",
        ));
    }
    if encrypted_data_keys.is_empty() || frame_length == 0 {
        return Err(malformed("no encrypted data key, or a zero frame length"));
    }
    let mut message_id = [0u8; MESSAGE_ID_LEN];
    crate::random::fill(&mut message_id).map_err(|_| malformed("no randomness"))?;
    let (key, commitment) = derive(suite, data_key, &message_id)?;

    // Header body (data-format/message-header.md, header body version 2.0).
    let mut out = Vec::with_capacity(plaintext.len() + 512);
    out.push(VERSION_2);
    out.extend_from_slice(&suite.id().to_be_bytes());
    out.extend_from_slice(&message_id);
    let aad = serialize_context(context)?;
    out.extend_from_slice(&u16_len(aad.len(), "the encryption context")?.to_be_bytes());
    out.extend_from_slice(&aad);
    out.extend_from_slice(
        &u16_len(encrypted_data_keys.len(), "encrypted data keys")?.to_be_bytes(),
    );
    for edk in encrypted_data_keys {
        for field in [
            edk.provider_id.as_bytes(),
            &edk.provider_info,
            &edk.ciphertext,
        ] {
            out.extend_from_slice(
                &u16_len(field.len(), "an encrypted data key field")?.to_be_bytes(),
            );
            out.extend_from_slice(field);
        }
    }
    out.push(CONTENT_FRAMED);
    out.extend_from_slice(&frame_length.to_be_bytes());
    out.extend_from_slice(&commitment[..]);

    // Header authentication version 2.0: the tag over the header body, IV 0, no plaintext.
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(iv(0)),
            Aad::from(&out[..]),
            &mut [],
        )
        .map_err(|_| malformed("header authentication failed"))?;
    out.extend_from_slice(tag.as_ref());

    // Body: regular frames, then exactly one final frame (data-format/message-body.md).
    let frame = frame_length as usize;
    let mut sequence: u32 = 1;
    let mut rest = plaintext;
    loop {
        let last = rest.len() < frame;
        let take = rest.len().min(frame);
        let (chunk, after) = rest.split_at(take);
        let content: &[u8] = if last { FINAL_FRAME_AAD } else { FRAME_AAD };
        let aad = body_aad(&message_id, content, sequence, take as u64);
        if last {
            out.extend_from_slice(&FINAL_FRAME_MARKER.to_be_bytes());
        }
        out.extend_from_slice(&sequence.to_be_bytes());
        out.extend_from_slice(&iv(sequence));
        if last {
            out.extend_from_slice(&(take as u32).to_be_bytes());
        }
        let start = out.len();
        out.extend_from_slice(chunk);
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(iv(sequence)),
                Aad::from(&aad[..]),
                &mut out[start..],
            )
            .map_err(|_| malformed("frame encryption failed"))?;
        out.extend_from_slice(tag.as_ref());
        if last {
            break;
        }
        rest = after;
        sequence = sequence
            .checked_add(1)
            .filter(|s| *s != FINAL_FRAME_MARKER)
            .ok_or_else(|| malformed("too many frames"))?;
    }

    // Footer (data-format/message-footer.md): ECDSA over header and body, DER-encoded.
    if let Some(signing) = signing {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let signature = signing
            .key
            .sign(&rng, &out)
            .map_err(|_| malformed("signing failed"))?;
        let signature = signature.as_ref();
        out.extend_from_slice(&u16_len(signature.len(), "the signature")?.to_be_bytes());
        out.extend_from_slice(signature);
    }
    Ok(out)
}

/// A cursor over untrusted bytes: every read checks what is left.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], FormatError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| malformed(format!("truncated in {what}")))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u8(&mut self, what: &str) -> Result<u8, FormatError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, FormatError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, FormatError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, what: &str) -> Result<u64, FormatError> {
        Ok(u64::from_be_bytes(self.array::<8>(what)?))
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], FormatError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn text(&mut self, n: usize, what: &str) -> Result<String, FormatError> {
        std::str::from_utf8(self.take(n, what)?)
            .map(str::to_owned)
            .map_err(|_| malformed(format!("{what} is not UTF-8")))
    }

    fn rest(&self) -> usize {
        self.bytes.len() - self.at
    }
}

/// Parses a header (`data-format/message-header.md`) and returns it with the offset where the
/// body starts. Checks structure and limits only: the header is authenticated by [`decrypt`].
pub(crate) fn parse_header(bytes: &[u8], limits: &Limits) -> Result<(Header, usize), FormatError> {
    if bytes.len() > limits.max_message_bytes {
        return Err(malformed(format!(
            "{} bytes is over the limit of {}",
            bytes.len(),
            limits.max_message_bytes
        )));
    }
    let mut r = Reader { bytes, at: 0 };
    // Version (message-header.md, supported versions): 2.0 only; 1.0 carries no commitment.
    match r.u8("the version")? {
        VERSION_2 => {}
        0x01 => {
            return Err(FormatError::Unsupported(
                "version 1.0 (no key commitment; only 2.0 is read)".into(),
            ));
        }
        other => return Err(malformed(format!("unknown version {other:#04x}"))),
    }
    let suite = Suite::from_id(r.u16("the algorithm suite")?)?;
    let message_id = r.array::<MESSAGE_ID_LEN>("the message ID")?;
    // AAD: key value pairs length, then the pairs (absent for an empty context).
    let aad_len = r.u16("the AAD length")? as usize;
    let aad = r.take(aad_len, "the encryption context")?;
    let context = parse_context(aad)?;
    // Encrypted data keys: count (> 0, at most the limit), then each entry.
    let count = r.u16("the encrypted data key count")? as usize;
    if count == 0 {
        return Err(malformed("no encrypted data key"));
    }
    if count > limits.max_encrypted_data_keys {
        return Err(malformed(format!(
            "{count} encrypted data keys (at most {} are read)",
            limits.max_encrypted_data_keys
        )));
    }
    let mut encrypted_data_keys = Vec::with_capacity(count);
    for _ in 0..count {
        let n = r.u16("a key provider ID length")? as usize;
        let provider_id = r.text(n, "a key provider ID")?;
        let n = r.u16("a key provider info length")? as usize;
        let provider_info = r.take(n, "a key provider info")?.to_vec();
        let n = r.u16("an encrypted data key length")? as usize;
        let ciphertext = r.take(n, "an encrypted data key")?.to_vec();
        encrypted_data_keys.push(EncryptedDataKey {
            provider_id,
            provider_info,
            ciphertext,
        });
    }
    // Content type and frame length (message-header.md): framed content has a frame
    // length (1 to our limit); non-framed content MUST have 0.
    let content_type = r.u8("the content type")?;
    let frame_length = r.u32("the frame length")?;
    match content_type {
        CONTENT_FRAMED if frame_length == 0 || frame_length > limits.max_frame_length => {
            return Err(malformed(format!(
                "frame length {frame_length} (1 to {} accepted)",
                limits.max_frame_length
            )));
        }
        CONTENT_FRAMED => {}
        CONTENT_NON_FRAMED if frame_length != 0 => {
            return Err(malformed(format!(
                "non-framed content with frame length {frame_length} (it must be 0)"
            )));
        }
        CONTENT_NON_FRAMED => {}
        other => return Err(malformed(format!("unknown content type {other:#04x}"))),
    }
    let commitment = r.array::<COMMITMENT_LEN>("the algorithm suite data")?;
    let body = bytes[..r.at].to_vec();
    // Header authentication version 2.0: the tag alone.
    let tag = r.array::<TAG_LEN>("the header authentication")?;
    Ok((
        Header {
            suite,
            message_id,
            context,
            encrypted_data_keys,
            frame_length,
            commitment,
            body,
            tag,
        },
        r.at,
    ))
}

/// The rules that tie a suite to its verification key, checked on the parsed header before
/// any key provider runs (`framework/default-cmm.md`, decrypt materials):
///
/// * a signed suite's context MUST carry the verification key (`aws-crypto-public-key`), and
///   it must be a P-384 point: else the signature could not be checked at the end;
/// * an unsigned suite's context MUST NOT carry one: otherwise anyone who can decrypt the
///   data key of a signed message could rewrite it unsigned around another plaintext, with
///   the same encrypted data key and context, and a reader would accept it;
/// * with [`RequireSigned`](super::SignaturePolicy::RequireSigned), unsigned suites are refused.
pub(crate) fn check_signature_rules(
    header: &Header,
    policy: super::SignaturePolicy,
) -> Result<(), FormatError> {
    let public_key = header.context.get(PUBLIC_KEY_CONTEXT);
    match (header.suite.signed(), public_key) {
        (true, None) => Err(FormatError::Rule(
            "a signed suite without its verification key (aws-crypto-public-key) in the context",
        )),
        (true, Some(key)) => match aws_smithy_types::base64::decode(key) {
            Ok(point) if point.len() == 49 && matches!(point[0], 0x02 | 0x03) => Ok(()),
            _ => Err(FormatError::Rule(
                "the verification key is not a compressed P-384 point in base64",
            )),
        },
        (false, Some(_)) => Err(FormatError::Rule(
            "an unsigned suite whose context carries a verification key (aws-crypto-public-key)",
        )),
        (false, None) if policy == super::SignaturePolicy::RequireSigned => Err(FormatError::Rule(
            "an unsigned message, and this reader requires signed ones",
        )),
        (false, None) => Ok(()),
    }
}

/// The key value pairs of the header AAD: count, then pairs; keys unique.
fn parse_context(aad: &[u8]) -> Result<BTreeMap<String, String>, FormatError> {
    let mut context = BTreeMap::new();
    if aad.is_empty() {
        return Ok(context);
    }
    let mut r = Reader { bytes: aad, at: 0 };
    let count = r.u16("the encryption context count")?;
    if count == 0 {
        return Err(malformed(
            "an encryption context of zero pairs must be empty",
        ));
    }
    // structures.md: no duplicate entries (refused: two values for one key); writers sort
    // the entries, but the header authentication covers the bytes as written and the
    // official readers take any order (the JavaScript SDK's vectors have unsorted ones), so
    // an unsorted context is read.
    for _ in 0..count {
        let n = r.u16("an encryption context key length")? as usize;
        let key = r.text(n, "an encryption context key")?;
        let n = r.u16("an encryption context value length")? as usize;
        let value = r.text(n, "an encryption context value")?;
        if context.insert(key, value).is_some() {
            return Err(malformed("an encryption context key is duplicated"));
        }
    }
    if r.rest() != 0 {
        return Err(malformed("bytes after the encryption context"));
    }
    Ok(context)
}

/// The plaintext length the frames from `body_at` declare, walking their structure only
/// (the checks are [`decrypt`]'s).
fn plaintext_len(bytes: &[u8], body_at: usize, frame: usize) -> Result<usize, FormatError> {
    let mut r = Reader { bytes, at: body_at };
    let mut total = 0usize;
    loop {
        if r.u32("a frame's sequence number")? == FINAL_FRAME_MARKER {
            r.take(4 + IV_LEN, "the final frame's header")?;
            let n = r.u32("the final frame's content length")? as usize;
            if n > frame {
                return Err(malformed("a final frame longer than the frame length"));
            }
            return Ok(total + n);
        }
        r.take(IV_LEN + frame + TAG_LEN, "a frame")?;
        total += frame;
    }
}

/// Decrypts the message whose header is `header` (parsed from `bytes`, body at `body_at`)
/// with `data_key` (`client-apis/decrypt.md`): key commitment (constant time), header
/// authentication, every frame in order up to exactly one final frame, the signature for the
/// signed suite, and nothing after it. The plaintext is released only when all of it checks.
pub(crate) fn decrypt(
    header: &Header,
    bytes: &[u8],
    body_at: usize,
    data_key: &[u8],
) -> Result<Zeroizing<Vec<u8>>, FormatError> {
    if data_key.len() != KEY_LEN {
        return Err(malformed("the data key is not 32 bytes"));
    }
    let (key, commitment) = derive(header.suite, data_key, &header.message_id)?;
    // Key commitment (transitive-requirements.md): constant-time comparison.
    verify_slices_are_equal(&commitment[..], &header.commitment)
        .map_err(|_| FormatError::Authentication("key commitment"))?;
    // Header authentication: the tag over the header body, IV 0.
    let mut tag_only = header.tag;
    key.open_in_place(
        Nonce::assume_unique_for_key(iv(0)),
        Aad::from(&header.body[..]),
        &mut tag_only,
    )
    .map_err(|_| FormatError::Authentication("header"))?;

    let mut r = Reader { bytes, at: body_at };
    let plaintext = if header.frame_length == 0 {
        decrypt_single_block(header, &key, &mut r)?
    } else {
        decrypt_frames(header, bytes, body_at, &key, &mut r)?
    };
    let signed_len = r.at;

    // Footer (data-format/message-footer.md) for the signed suite.
    if header.suite.signed() {
        let n = r.u16("the signature length")? as usize;
        let signature = r.take(n, "the signature")?;
        let public_key =
            header
                .context
                .get(PUBLIC_KEY_CONTEXT)
                .ok_or(FormatError::Authentication(
                    "no verification key in the context",
                ))?;
        let public_key = aws_smithy_types::base64::decode(public_key)
            .map_err(|_| FormatError::Authentication("the verification key is not base64"))?;
        UnparsedPublicKey::new(&ECDSA_P384_SHA384_ASN1, &public_key)
            .verify(&bytes[..signed_len], signature)
            .map_err(|_| FormatError::Authentication("the signature"))?;
    }
    if r.rest() != 0 {
        return Err(malformed("bytes after the end of the message"));
    }
    Ok(plaintext)
}

/// Non-framed content (`data-format/message-body.md`, non-framed data): IV, content length
/// (u64), content, tag; sequence number 1, so the IV is 1 padded to 12 bytes
/// (`client-apis/decrypt.md`), and the body AAD content is `AWSKMSEncryptionClient Single
/// Block` (`data-format/message-body-aad.md`).
fn decrypt_single_block(
    header: &Header,
    key: &LessSafeKey,
    r: &mut Reader<'_>,
) -> Result<Zeroizing<Vec<u8>>, FormatError> {
    let stored_iv = r.array::<IV_LEN>("the content IV")?;
    if stored_iv != iv(1) {
        return Err(FormatError::Authentication("the content IV"));
    }
    let length = r.u64("the encrypted content length")?;
    // Checked against what is left before anything is allocated for it.
    let length = usize::try_from(length)
        .ok()
        .filter(|n| n.checked_add(TAG_LEN).is_some_and(|end| end <= r.rest()))
        .ok_or_else(|| malformed("truncated in the encrypted content"))?;
    let aad = body_aad(&header.message_id, SINGLE_BLOCK_AAD, 1, length as u64);
    let ciphertext = r.take(length, "the encrypted content")?;
    let tag = r.take(TAG_LEN, "the content's tag")?;
    let mut plaintext = Zeroizing::new(vec![0u8; length]);
    key.open_separate_gather(
        Nonce::assume_unique_for_key(iv(1)),
        Aad::from(&aad[..]),
        ciphertext,
        tag,
        &mut plaintext[..],
    )
    .map_err(|_| FormatError::Authentication("the content"))?;
    Ok(plaintext)
}

/// Framed content: every frame in order up to exactly one final frame.
fn decrypt_frames(
    header: &Header,
    bytes: &[u8],
    body_at: usize,
    key: &LessSafeKey,
    r: &mut Reader<'_>,
) -> Result<Zeroizing<Vec<u8>>, FormatError> {
    let frame = header.frame_length as usize;
    // Exactly the plaintext's size: the buffer becomes the value without being reallocated
    // (a reallocation would leave a copy of the plaintext in freed memory).
    let mut plaintext = Zeroizing::new(Vec::with_capacity(plaintext_len(bytes, body_at, frame)?));
    let mut expected: u32 = 1;
    loop {
        // data-format/message-body.md: a regular frame starts with its sequence number; the
        // final frame with the end marker, then its sequence number.
        let first = r.u32("a frame's sequence number")?;
        let last = first == FINAL_FRAME_MARKER;
        let sequence = if last {
            r.u32("the final frame's sequence number")?
        } else {
            first
        };
        if sequence != expected {
            return Err(FormatError::Authentication("frames out of order"));
        }
        let stored_iv = r.array::<IV_LEN>("a frame IV")?;
        if stored_iv != iv(sequence) {
            return Err(FormatError::Authentication("a frame IV"));
        }
        let length = if last {
            let n = r.u32("the final frame's content length")? as usize;
            if n > frame {
                return Err(malformed("a final frame longer than the frame length"));
            }
            n
        } else {
            frame
        };
        let content: &[u8] = if last { FINAL_FRAME_AAD } else { FRAME_AAD };
        let aad = body_aad(&header.message_id, content, sequence, length as u64);
        let ciphertext = r.take(length, "a frame's content")?;
        let tag = r.take(TAG_LEN, "a frame's tag")?;
        // Decrypted straight into the exact-size buffer: it never grows, so no copy of the
        // plaintext is left behind in freed memory (on failure the buffer is zeroized).
        let start = plaintext.len();
        if start + length > plaintext.capacity() {
            return Err(malformed("frames longer than they declare"));
        }
        plaintext.resize(start + length, 0);
        key.open_separate_gather(
            Nonce::assume_unique_for_key(iv(sequence)),
            Aad::from(&aad[..]),
            ciphertext,
            tag,
            &mut plaintext[start..],
        )
        .map_err(|_| FormatError::Authentication("a frame"))?;
        if last {
            break;
        }
        expected = sequence
            .checked_add(1)
            .filter(|s| *s != FINAL_FRAME_MARKER)
            .ok_or_else(|| malformed("too many frames"))?;
    }
    Ok(plaintext)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The official JavaScript SDK's message-format-2 compatibility vectors (46 messages
    /// written by the JS, C, Python and Java SDKs, with their plaintext data keys; transcribed
    /// into `tests/fixtures/esdk-js/compat-v2.json` with their source), through this format
    /// layer with the given data keys, as the JS test injects them: every good one opens to
    /// its plaintext with its encryption context, every bad one is refused for the reason the
    /// JS SDK gives ("Invalid commitment"), except the twelve static vectors whose frame IVs
    /// are not their sequence numbers (refused here, see `STORED_IV_VECTORS`). The vectors
    /// include non-framed content, one-byte frames, unsorted contexts and both suites.
    /// The vectors whose frames carry an IV that is not their sequence number.
    const STORED_IV_VECTORS: [&str; 12] = [
        "6", "7", "8", "9", "10", "11", "14", "15", "16", "17", "18", "19",
    ];

    #[test]
    fn the_javascript_sdks_format_2_vectors_agree() {
        let fixture: serde_json::Value = serde_json::from_str(include_str!(
            "../../../../tests/fixtures/esdk-js/compat-v2.json"
        ))
        .unwrap();
        let vectors = fixture["vectors"].as_array().unwrap();
        assert_eq!(vectors.len(), 46);
        let decode =
            |v: &serde_json::Value| aws_smithy_types::base64::decode(v.as_str().unwrap()).unwrap();
        let mut disagreements = Vec::new();
        let mut non_framed = 0;
        for vector in vectors {
            let name = vector["name"].as_str().unwrap();
            let message = decode(&vector["ciphertext_base64"]);
            let data_key = decode(&vector["data_key_base64"]);
            let opened = parse_header(&message, &Limits::default()).and_then(|(header, at)| {
                check_signature_rules(&header, crate::envelope::SignaturePolicy::AllowUnsigned)?;
                if header.frame_length == 0 {
                    non_framed += 1;
                }
                let context: BTreeMap<String, String> =
                    serde_json::from_value(vector["encryption_context"].clone()).unwrap();
                assert_eq!(header.context, context, "{name}");
                decrypt(&header, &message, at, &data_key)
            });
            let number = name.split('.').next().unwrap();
            match (vector["expect"].as_str().unwrap(), opened) {
                // Our one documented difference (docs/envelope.md): the IV of a frame is its
                // sequence number (client-apis/decrypt.md), and these static vectors store
                // other IVs, which the JavaScript SDK decrypts with as stored.
                ("ok", Err(FormatError::Authentication("a frame IV")))
                    if STORED_IV_VECTORS.contains(&number) => {}
                ("ok", Ok(plaintext)) => {
                    let want = vector["plaintext_utf8"].as_str().unwrap().as_bytes();
                    if &plaintext[..] != want {
                        disagreements.push(format!("{name}: another plaintext"));
                    }
                }
                ("reject", Err(FormatError::Authentication("key commitment"))) => {}
                (expect, outcome) => disagreements.push(format!(
                    "{name}: expected {expect}, got {:?}",
                    outcome.map(|p| p.len())
                )),
            }
        }
        assert!(disagreements.is_empty(), "{disagreements:#?}");
        assert!(non_framed > 0, "the set has non-framed messages");
    }

    /// The plaintext buffer is allocated once at its exact size: it never grows (a reallocation
    /// would leave a copy in freed memory) and becomes the value without shrinking.
    #[test]
    fn the_plaintext_buffer_is_allocated_once_at_its_exact_size() {
        let data_key = [3u8; KEY_LEN];
        let edk = EncryptedDataKey {
            provider_id: "p".into(),
            provider_info: b"i".to_vec(),
            ciphertext: b"c".to_vec(),
        };
        let context = BTreeMap::from([("k".to_owned(), "v".to_owned())]);
        for size in [0, 1, 4095, 4096, 4097, 3 * 4096 + 17] {
            let plaintext: Vec<u8> = (0..size).map(|i| i as u8).collect();
            let message = encrypt(
                Suite::Committing,
                &context,
                std::slice::from_ref(&edk),
                &data_key,
                None,
                &plaintext,
                FRAME_LENGTH,
            )
            .unwrap();
            let (header, body_at) = parse_header(&message, &Limits::default()).unwrap();
            assert_eq!(header.context, context);
            let opened = decrypt(&header, &message, body_at, &data_key).unwrap();
            assert_eq!(&opened[..], &plaintext[..]);
            assert_eq!(opened.capacity(), opened.len(), "{size} bytes");
            let wrong = decrypt(&header, &message, body_at, &[4u8; KEY_LEN]).unwrap_err();
            assert_eq!(wrong, FormatError::Authentication("key commitment"));
        }
    }
}
