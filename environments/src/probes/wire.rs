//! Big-endian framing shared by the two tiny wire clients ([`crate::probes::zk_client`]
//! and [`crate::probes::kafka_client`]): both protocols send a 4-byte length followed
//! by the frame, and encode integers and strings the same way.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Largest frame either client accepts: a bound so that a confused peer
/// cannot make the observer allocate without limit.
pub const MAX_FRAME: usize = 16 * 1024 * 1024;

/// Opens a TCP connection with every step bounded by `timeout`.
pub fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Sends one length-prefixed frame.
pub fn write_frame(stream: &mut impl Write, body: &[u8]) -> io::Result<()> {
    let mut buf = Vec::with_capacity(body.len() + 4);
    buf.extend_from_slice(&(body.len() as i32).to_be_bytes());
    buf.extend_from_slice(body);
    stream.write_all(&buf)?;
    stream.flush()
}

/// Reads one length-prefixed frame.
pub fn read_frame(stream: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let len = i32::from_be_bytes(len);
    if len < 0 || len as usize > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame length {len} out of bounds"),
        ));
    }
    let mut body = vec![0u8; len as usize];
    stream.read_exact(&mut body)?;
    Ok(body)
}

/// Builds a request body.
#[derive(Default)]
pub struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    /// An empty body.
    pub fn new() -> Self {
        Self::default()
    }
    /// Appends a boolean as one byte.
    pub fn bool(mut self, v: bool) -> Self {
        self.buf.push(u8::from(v));
        self
    }
    /// Appends a 16-bit integer.
    pub fn i16(mut self, v: i16) -> Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// Appends a 32-bit integer.
    pub fn i32(mut self, v: i32) -> Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// Appends a 64-bit integer.
    pub fn i64(mut self, v: i64) -> Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// Appends bytes with a 32-bit length (ZooKeeper's `buffer`/`ustring`).
    pub fn bytes32(self, v: &[u8]) -> Self {
        let mut this = self.i32(v.len() as i32);
        this.buf.extend_from_slice(v);
        this
    }
    /// Appends a string with a 16-bit length (Kafka's `STRING`).
    pub fn str16(self, v: &str) -> Self {
        let mut this = self.i16(v.len() as i16);
        this.buf.extend_from_slice(v.as_bytes());
        this
    }
    /// Appends an unsigned varint (Kafka's `UNSIGNED_VARINT`, used by
    /// flexible versions for lengths and tagged-field counts).
    pub fn uvarint(mut self, mut v: u32) -> Self {
        while v >= 0x80 {
            self.buf.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
        self
    }
    /// Appends a compact string (length + 1 as an unsigned varint).
    pub fn compact_str(self, v: &str) -> Self {
        let mut this = self.uvarint(v.len() as u32 + 1);
        this.buf.extend_from_slice(v.as_bytes());
        this
    }
    /// Appends an empty tagged-field section (flexible versions end every
    /// structure with one).
    pub fn no_tags(self) -> Self {
        self.uvarint(0)
    }
    /// The encoded body.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads a response body, every read bounds-checked.
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// A response that ended early or held an impossible length.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed response: {0}")]
pub struct Malformed(pub String);

impl<'a> Decoder<'a> {
    /// Starts at the beginning of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if self.buf.len() - self.pos < n {
            return Err(Malformed(format!(
                "needed {n} bytes at offset {}, only {} left",
                self.pos,
                self.buf.len() - self.pos
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    /// One byte as a boolean.
    pub fn bool(&mut self) -> Result<bool, Malformed> {
        Ok(self.take(1)?[0] != 0)
    }
    /// A 16-bit integer.
    pub fn i16(&mut self) -> Result<i16, Malformed> {
        Ok(i16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    /// A 32-bit integer.
    pub fn i32(&mut self) -> Result<i32, Malformed> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    /// A 64-bit integer.
    pub fn i64(&mut self) -> Result<i64, Malformed> {
        Ok(i64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    /// Bytes with a 32-bit length; `None` for length -1.
    pub fn bytes32(&mut self) -> Result<Option<&'a [u8]>, Malformed> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(None);
        }
        self.take(len as usize).map(Some)
    }
    /// A string with a 16-bit length; `None` for length -1.
    pub fn str16(&mut self) -> Result<Option<String>, Malformed> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        let raw = self.take(len as usize)?;
        Ok(Some(String::from_utf8_lossy(raw).into_owned()))
    }
    /// An unsigned varint (at most 5 bytes).
    pub fn uvarint(&mut self) -> Result<u32, Malformed> {
        let mut v: u32 = 0;
        for i in 0..5 {
            let b = self.take(1)?[0];
            v |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Malformed("varint longer than 5 bytes".into()))
    }
    /// A compact string; `None` for null (length 0).
    pub fn compact_str(&mut self) -> Result<Option<String>, Malformed> {
        let n = self.uvarint()?;
        if n == 0 {
            return Ok(None);
        }
        let raw = self.take(n as usize - 1)?;
        Ok(Some(String::from_utf8_lossy(raw).into_owned()))
    }
    /// A compact array's length; null reads as 0. Bounded by what is left.
    pub fn compact_array_len(&mut self) -> Result<usize, Malformed> {
        let n = self.uvarint()? as usize;
        let len = n.saturating_sub(1);
        if len > self.remaining() {
            return Err(Malformed(format!(
                "array of {len} elements in {} bytes",
                self.remaining()
            )));
        }
        Ok(len)
    }
    /// Skips a tagged-field section (none of the tags are needed here).
    pub fn skip_tags(&mut self) -> Result<(), Malformed> {
        let n = self.uvarint()?;
        for _ in 0..n {
            let _tag = self.uvarint()?;
            let size = self.uvarint()?;
            self.take(size as usize)?;
        }
        Ok(())
    }
    /// An array length (32 bits); -1 (null) reads as 0. Bounded by what is
    /// left, so a wrong count cannot make a caller loop for long.
    pub fn array_len(&mut self) -> Result<usize, Malformed> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(0);
        }
        if n as usize > self.remaining() {
            return Err(Malformed(format!(
                "array of {n} elements in {} bytes",
                self.remaining()
            )));
        }
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoder_and_decoder_agree() {
        let body = Encoder::new()
            .i16(-2)
            .i32(7)
            .i64(1 << 40)
            .bool(true)
            .str16("abc")
            .bytes32(b"xy")
            .finish();
        let mut d = Decoder::new(&body);
        assert_eq!(d.i16().unwrap(), -2);
        assert_eq!(d.i32().unwrap(), 7);
        assert_eq!(d.i64().unwrap(), 1 << 40);
        assert!(d.bool().unwrap());
        assert_eq!(d.str16().unwrap().as_deref(), Some("abc"));
        assert_eq!(d.bytes32().unwrap(), Some(&b"xy"[..]));
        assert_eq!(d.remaining(), 0);
    }

    #[test]
    fn flexible_encodings_round_trip() {
        let body = Encoder::new()
            .uvarint(300)
            .compact_str("__cluster_metadata")
            .no_tags()
            .finish();
        assert_eq!(&body[..2], &[0xac, 0x02]);
        let mut d = Decoder::new(&body);
        assert_eq!(d.uvarint().unwrap(), 300);
        assert_eq!(
            d.compact_str().unwrap().as_deref(),
            Some("__cluster_metadata")
        );
        d.skip_tags().unwrap();
        assert_eq!(d.remaining(), 0);
        // One tag of 2 bytes is skipped whole; a null string is None.
        let mut d = Decoder::new(&[1, 5, 2, 9, 9, 0]);
        d.skip_tags().unwrap();
        assert_eq!(d.compact_str().unwrap(), None);
        assert!(Decoder::new(&[0xff; 6]).uvarint().is_err());
        assert!(Decoder::new(&[0x7f]).compact_array_len().is_err());
    }

    #[test]
    fn short_input_is_an_error_not_a_panic() {
        let mut d = Decoder::new(&[0, 0, 0]);
        assert!(d.i32().is_err());
        let mut d = Decoder::new(&[0, 0, 0, 9, 1]);
        assert!(d.bytes32().is_err());
        let mut d = Decoder::new(&[0x7f, 0xff, 0xff, 0xff]);
        assert!(d.array_len().is_err());
    }

    #[test]
    fn frames_round_trip_and_oversized_frames_are_refused() {
        let mut out = Vec::new();
        write_frame(&mut out, b"hello").unwrap();
        assert_eq!(read_frame(&mut &out[..]).unwrap(), b"hello");
        let huge = (MAX_FRAME as i32 + 1).to_be_bytes();
        assert!(read_frame(&mut &huge[..]).is_err());
    }
}
