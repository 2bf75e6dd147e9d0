package server

// SameAddr is sameAddr, for the tests.
var SameAddr = sameAddr
