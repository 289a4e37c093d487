package wire

// ErgoCanDecode exposes the structure check to the external tests.
var ErgoCanDecode = ergoCanDecode
