package wire

// RawTerm: TEMPORARY stub until the erldist branch lands; deleted at the merge.
type RawTerm []byte
