package erldist

import (
	"strings"

	"github.com/ergo-services/ergo/node"
)

// flags are the distribution capability flags exchanged in the handshake
// (erts "Distribution Protocol", Distribution Flags).
type flags uint64

const (
	flagPublished          flags = 0x1
	flagAtomCache          flags = 0x2 // obsolete
	flagExtendedReferences flags = 0x4
	flagDistMonitor        flags = 0x8
	flagFunTags            flags = 0x10
	flagDistMonitorName    flags = 0x20
	flagHiddenAtomCache    flags = 0x40 // obsolete
	flagNewFunTags         flags = 0x80
	flagExtendedPidsPorts  flags = 0x100
	flagExportPtrTag       flags = 0x200
	flagBitBinaries        flags = 0x400
	flagNewFloats          flags = 0x800
	flagUnicodeIO          flags = 0x1000
	flagDistHdrAtomCache   flags = 0x2000
	flagSmallAtomTags      flags = 0x4000
	flagUTF8Atoms          flags = 0x10000
	flagMapTag             flags = 0x20000
	flagBigCreation        flags = 0x40000
	flagSendSender         flags = 0x80000
	flagBigSeqTraceLabels  flags = 0x100000
	flagExitPayload        flags = 0x400000
	flagFragments          flags = 0x800000
	flagHandshake23        flags = 0x1000000
	flagUnlinkID           flags = 0x2000000
	flagSpawn              flags = 1 << 32
	flagNameMe             flags = 1 << 33
	flagV4NC               flags = 1 << 34
	flagAlias              flags = 1 << 35
	flagMandatory25Digest  flags = 1 << 36

	// ergo's private flags (compressed and proxied packets). Never
	// advertised: an ergo peer would send packets only ergo reads.
	flagErgoProxy       flags = 1 << 62
	flagErgoCompression flags = 1 << 63
)

// ourFlags is what this layer advertises: everything OTP 25 makes
// mandatory (which DFLAG_MANDATORY_25_DIGEST stands for), the atom cache
// in the distribution header, fragments, spawn, aliases, payload exits,
// SEND_SENDER and the new link protocol (UNLINK_ID, mandatory from OTP 26).
const ourFlags = flagPublished | flagExtendedReferences | flagDistMonitor | flagFunTags | flagDistMonitorName |
	flagNewFunTags | flagExtendedPidsPorts | flagExportPtrTag | flagBitBinaries | flagNewFloats | flagUnicodeIO |
	flagDistHdrAtomCache | flagSmallAtomTags | flagUTF8Atoms | flagMapTag | flagBigCreation | flagSendSender |
	flagBigSeqTraceLabels | flagExitPayload | flagFragments | flagHandshake23 | flagUnlinkID | flagSpawn |
	flagV4NC | flagAlias | flagMandatory25Digest

// requiredFlags are what a peer must have for this layer's encoding: it
// writes pids, ports and references in their OTP 23+ forms, atoms in
// UTF-8, floats as NEW_FLOAT_EXT and maps. OTP 25 and stock ergo nodes
// have them all.
const requiredFlags = flagExtendedReferences | flagExtendedPidsPorts | flagUTF8Atoms | flagNewFloats | flagMapTag |
	flagBigCreation | flagHandshake23

func (f flags) has(x flags) bool { return f&x == x }

// missing names the required flags f lacks.
func (f flags) missing() string {
	var names []string
	for _, x := range []struct {
		f    flags
		name string
	}{
		{flagExtendedReferences, "EXTENDED_REFERENCES"}, {flagExtendedPidsPorts, "EXTENDED_PIDS_PORTS"},
		{flagUTF8Atoms, "UTF8_ATOMS"}, {flagNewFloats, "NEW_FLOATS"}, {flagMapTag, "MAP_TAG"},
		{flagBigCreation, "BIG_CREATION"}, {flagHandshake23, "HANDSHAKE_23"},
	} {
		if !f.has(x.f) {
			names = append(names, "DFLAG_"+x.name)
		}
	}
	return strings.Join(names, ", ")
}

// ergoFlags translates f for ergo's node.HandshakeDetails (what ergo's
// own code may look at).
func (f flags) ergoFlags() node.Flags {
	return node.Flags{
		Enable:                true,
		EnableHeaderAtomCache: f.has(flagDistHdrAtomCache),
		EnableBigCreation:     f.has(flagBigCreation),
		EnableBigPidRef:       f.has(flagV4NC),
		EnableFragmentation:   f.has(flagFragments),
		EnableAlias:           f.has(flagAlias),
		EnableRemoteSpawn:     f.has(flagSpawn),
	}
}

// flagsFromErgo is the reverse, for a connection whose handshake was not
// this package's (ergo's handshake with this proto): the capabilities
// every ergo node has, plus those ergo negotiated.
func flagsFromErgo(e node.Flags) flags {
	f := flagPublished | flagExtendedReferences | flagDistMonitor | flagDistMonitorName | flagExtendedPidsPorts |
		flagExportPtrTag | flagBitBinaries | flagNewFloats | flagUTF8Atoms | flagMapTag | flagHandshake23 |
		flagNewFunTags | flagFunTags | flagSmallAtomTags
	for _, x := range []struct {
		on bool
		f  flags
	}{
		{e.EnableHeaderAtomCache, flagDistHdrAtomCache}, {e.EnableBigCreation, flagBigCreation},
		{e.EnableBigPidRef, flagV4NC}, {e.EnableFragmentation, flagFragments}, {e.EnableAlias, flagAlias},
		{e.EnableRemoteSpawn, flagSpawn},
	} {
		if x.on {
			f |= x.f
		}
	}
	return f
}
