"""Why a host sent its resets: captures (all their file I/O), the pcap reader, the capture summary,
the cause catalogue and the pure per-host evidence built from a probe document."""
