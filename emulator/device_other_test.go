//go:build !linux

package emulator_test

import "errors"

func makeDevice(string, bool, uint32, uint32) error { return errors.ErrUnsupported }
