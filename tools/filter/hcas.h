/* The Mellanox HCAs mlnx_hca knows, for mlnx_hca_filter.exe: the same table
 * as the driver's (src/core/hca.rs, HCAS), in the same order; a test
 * (tests/hca_ids.rs) compares the two entry by entry.
 *
 * HCA(device id, name, how CR space is reached, flash recovery or not)
 *   CR_BAR0     BAR 0 is CR space: mapped into tools.
 *   CR_GATEWAY  Connect-IB, ConnectX-4 and later: BAR 0 holds the running
 *               driver's initialization segment and doorbells and is never
 *               touched; CR space is reached through the configuration-space
 *               gateway.
 */
HCA(0x5A44, "InfiniHost (MT23108)", CR_BAR0, 0)
HCA(0x5A45, "InfiniHost (MT23108) flash recovery", CR_BAR0, 1)
HCA(0x6278, "InfiniHost III Ex (MT25208, Tavor compatibility)", CR_BAR0, 0)
HCA(0x6282, "InfiniHost III Ex (MT25208)", CR_BAR0, 0)
HCA(0x6279, "InfiniHost III Ex (MT25208) flash recovery", CR_BAR0, 1)
HCA(0x6274, "InfiniHost III Lx (MT25204)", CR_BAR0, 0)
HCA(0x5E8C, "InfiniHost III Lx (MT24204)", CR_BAR0, 0)
HCA(0x5E8D, "InfiniHost III Lx (MT25204) flash recovery", CR_BAR0, 1)
HCA(0x6340, "ConnectX (MT25408) IB SDR", CR_BAR0, 0)
HCA(0x634A, "ConnectX (MT25408) IB DDR", CR_BAR0, 0)
HCA(0x6354, "ConnectX (MT25408) IB QDR", CR_BAR0, 0)
HCA(0x6732, "ConnectX (MT25408) IB DDR, PCIe 5 GT/s", CR_BAR0, 0)
HCA(0x673C, "ConnectX (MT25408) IB QDR, PCIe 5 GT/s", CR_BAR0, 0)
HCA(0x6746, "ConnectX VPI (MT26438)", CR_BAR0, 0)
HCA(0x0191, "ConnectX (MT25408) flash recovery", CR_BAR0, 1)
HCA(0x1003, "ConnectX-3 (MT27500)", CR_BAR0, 0)
HCA(0x01F6, "ConnectX-3 (MT27500) flash recovery", CR_BAR0, 1)
HCA(0x1007, "ConnectX-3 Pro (MT27520)", CR_BAR0, 0)
HCA(0x01F8, "ConnectX-3 Pro (MT27520) flash recovery", CR_BAR0, 1)
HCA(0x1011, "Connect-IB (MT27600)", CR_GATEWAY, 0)
HCA(0x01FF, "Connect-IB (MT27600) flash recovery", CR_GATEWAY, 1)
HCA(0x1013, "ConnectX-4 (MT27700)", CR_GATEWAY, 0)
HCA(0x0209, "ConnectX-4 (MT27700) flash recovery", CR_GATEWAY, 1)
HCA(0x1015, "ConnectX-4 Lx (MT27710)", CR_GATEWAY, 0)
HCA(0x020B, "ConnectX-4 Lx (MT27710) flash recovery", CR_GATEWAY, 1)
HCA(0x1017, "ConnectX-5 (MT27800)", CR_GATEWAY, 0)
HCA(0x1019, "ConnectX-5 Ex (MT28800)", CR_GATEWAY, 0)
HCA(0x020D, "ConnectX-5 (MT28800) flash recovery", CR_GATEWAY, 1)
HCA(0x101B, "ConnectX-6 (MT28908)", CR_GATEWAY, 0)
HCA(0x020F, "ConnectX-6 (MT28908) flash recovery", CR_GATEWAY, 1)
HCA(0x101D, "ConnectX-6 Dx (MT2892)", CR_GATEWAY, 0)
HCA(0x0212, "ConnectX-6 Dx (MT2892) flash recovery", CR_GATEWAY, 1)
HCA(0x101F, "ConnectX-6 Lx (MT2894)", CR_GATEWAY, 0)
HCA(0x0216, "ConnectX-6 Lx (MT2894) flash recovery", CR_GATEWAY, 1)
HCA(0x1021, "ConnectX-7 (MT2910)", CR_GATEWAY, 0)
HCA(0x0218, "ConnectX-7 (MT2910) flash recovery", CR_GATEWAY, 1)
HCA(0xA2D2, "BlueField (MT416842)", CR_GATEWAY, 0)
HCA(0x0211, "BlueField (MT416842) flash recovery", CR_GATEWAY, 1)
HCA(0xA2D6, "BlueField-2 (MT42822)", CR_GATEWAY, 0)
HCA(0x0214, "BlueField-2 (MT42822) flash recovery", CR_GATEWAY, 1)
HCA(0xA2DC, "BlueField-3 (MT43244)", CR_GATEWAY, 0)
HCA(0x021C, "BlueField-3 (MT43244) flash recovery", CR_GATEWAY, 1)
