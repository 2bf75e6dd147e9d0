package server

import (
	"context"
	"errors"
	"io"
	"log/slog"

	"github.com/rtemu-dev/rtemu/config"
	"github.com/rtemu-dev/rtemu/sandbox"
)

// WithStopped runs fn on the service of a data dir no rtemu serves (rtemu
// state save|load without a running rtemu): rtemu starts on it, listening
// on free loopback ports only, and stops after fn, leaving its sandboxes
// running as any stop does.
func WithStopped(ctx context.Context, cfg config.Config, version string, log *slog.Logger, fn func(*sandbox.Service) error) error {
	cfg.Addr, cfg.SSHAddr, cfg.Seed, cfg.Ephemeral = "127.0.0.1:0", "127.0.0.1:0", "", false
	cfg.WarmPool = nil
	srv, err := Start(ctx, cfg, version, log)
	if err != nil {
		return err
	}
	ferr := fn(srv.Service())
	return errors.Join(ferr, srv.Close(context.WithoutCancel(ctx)))
}

// SaveStopped writes the state of a data dir no rtemu serves to w.
func SaveStopped(ctx context.Context, cfg config.Config, version string, log *slog.Logger, opts sandbox.SaveOptions, w io.Writer) error {
	return WithStopped(ctx, cfg, version, log, func(svc *sandbox.Service) error {
		saved, err := svc.PrepareSave(ctx, version, opts)
		if err != nil {
			return err
		}
		defer saved.Close()
		return saved.WriteTo(ctx, w)
	})
}

// LoadStopped loads an archive into a data dir no rtemu serves.
func LoadStopped(ctx context.Context, cfg config.Config, version string, log *slog.Logger, r io.Reader) (*sandbox.LoadResult, error) {
	var res *sandbox.LoadResult
	err := WithStopped(ctx, cfg, version, log, func(svc *sandbox.Service) error {
		var err error
		res, err = svc.LoadState(ctx, r)
		return err
	})
	return res, err
}
