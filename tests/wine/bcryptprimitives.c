/* bcryptprimitives.dll for the Wine run only: Wine 8 (Debian 12) has no
 * bcryptprimitives.dll, which Windows 10 and later ship and Rust's standard
 * library imports (ProcessPrng, for the random seed of its hash maps), so
 * the tools built from Rust (crspace.exe, anything linking the crspace C
 * API) would not load. This stand-in exports ProcessPrng over
 * RtlGenRandom (advapi32's SystemFunction036), which Wine has. It is
 * copied into the throwaway Wine prefix, never shipped: Windows has the real
 * one. */
#include <windows.h>
#include <ntsecapi.h>

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len) {
        ULONG n = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!RtlGenRandom(data, n)) return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
