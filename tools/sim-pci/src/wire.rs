//! How a tool's process reaches the simulated ConnectX-4's driver, which
//! runs in the `sim-pci serve` process: one connection to its Unix socket is
//! one open handle of the control device, one message one
//! `DeviceIoControl`. Shared by the server (`main.rs`) and the preload
//! library (`mstconf.rs`), so that both sides are written once.
//!
//! A request: the code, the input's length, the output buffer's length (each
//! a little-endian `u32`), then the input. The answer: the status (the
//! NTSTATUS as a `u32`; 0 is success), the bytes written, then those bytes.
//! The connection's end is the handle's close, whoever ends it: a tool
//! killed with `SIGKILL` has its socket closed by the kernel, and the
//! driver's cleanup gives back what the handle held (its tool locks, the
//! lease).

use std::io::{self, Read, Write};

/// The longest input or output a request may carry (the largest the
/// contract has is a block write: 12 + 256 bytes).
pub const MAX_BUFFER: u32 = 4096;

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn too_long(what: &str, len: u32) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{what} of {len} bytes (at most {MAX_BUFFER})"))
}

/// Sends a request.
pub fn send_request(w: &mut impl Write, code: u32, input: &[u8], output_len: u32) -> io::Result<()> {
    let input_len = u32::try_from(input.len()).map_err(|_| too_long("an input", u32::MAX))?;
    if input_len > MAX_BUFFER || output_len > MAX_BUFFER {
        return Err(too_long("a buffer", input_len.max(output_len)));
    }
    let mut message = Vec::with_capacity(12 + input.len());
    for word in [code, input_len, output_len] {
        message.extend_from_slice(&word.to_le_bytes());
    }
    message.extend_from_slice(input);
    w.write_all(&message)
}

/// A request as received: the code, the input, the output buffer's length.
/// `None` when the other side closed the connection between requests.
pub fn receive_request(r: &mut impl Read) -> io::Result<Option<(u32, Vec<u8>, u32)>> {
    let mut header = [0u8; 12];
    let mut got = 0;
    while got < header.len() {
        match r.read(&mut header[got..])? {
            0 if got == 0 => return Ok(None),
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => got += n,
        }
    }
    let (code, input_len, output_len) = (u32_at(&header, 0), u32_at(&header, 4), u32_at(&header, 8));
    if input_len > MAX_BUFFER || output_len > MAX_BUFFER {
        return Err(too_long("a buffer", input_len.max(output_len)));
    }
    let mut input = vec![0u8; input_len as usize];
    r.read_exact(&mut input)?;
    Ok(Some((code, input, output_len)))
}

/// Sends an answer: `status` 0 with the output written, or a failure's
/// status and no bytes.
pub fn send_answer(w: &mut impl Write, status: u32, output: &[u8]) -> io::Result<()> {
    let written = u32::try_from(output.len()).map_err(|_| too_long("an output", u32::MAX))?;
    let mut message = Vec::with_capacity(8 + output.len());
    message.extend_from_slice(&status.to_le_bytes());
    message.extend_from_slice(&written.to_le_bytes());
    message.extend_from_slice(output);
    w.write_all(&message)
}

/// An answer as received: the status and the bytes written (at most
/// `output_len`, the request's buffer).
pub fn receive_answer(r: &mut impl Read, output_len: u32) -> io::Result<(u32, Vec<u8>)> {
    let mut header = [0u8; 8];
    r.read_exact(&mut header)?;
    let (status, written) = (u32_at(&header, 0), u32_at(&header, 4));
    if written > output_len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the driver wrote {written} bytes into a buffer of {output_len}"),
        ));
    }
    let mut output = vec![0u8; written as usize];
    r.read_exact(&mut output)?;
    Ok((status, output))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_and_its_answer_go_through_whole() {
        let mut wire = Vec::new();
        send_request(&mut wire, 0x003B_6010, &[2, 0, 0, 0, 0x14, 0, 0x0F, 0, 1, 0, 0, 0], 4).unwrap();
        let mut r = &wire[..];
        let (code, input, out) = receive_request(&mut r).unwrap().unwrap();
        assert_eq!((code, input.len(), out), (0x003B_6010, 12, 4));
        assert!(receive_request(&mut r).unwrap().is_none(), "the end between requests");
        let mut wire = Vec::new();
        send_answer(&mut wire, 0, &0x209u32.to_le_bytes()).unwrap();
        assert_eq!(receive_answer(&mut &wire[..], 4).unwrap(), (0, vec![9, 2, 0, 0]));
        assert!(receive_answer(&mut &wire[..], 3).is_err(), "more than the buffer holds");
    }

    #[test]
    fn oversized_or_cut_messages_are_refused() {
        let mut wire = Vec::new();
        assert!(send_request(&mut wire, 1, &vec![0; MAX_BUFFER as usize + 1], 0).is_err());
        let mut header = Vec::new();
        for word in [1u32, MAX_BUFFER + 1, 0] {
            header.extend_from_slice(&word.to_le_bytes());
        }
        assert!(receive_request(&mut &header[..]).is_err());
        assert!(receive_request(&mut &header[..5]).is_err(), "a request cut short");
    }
}
