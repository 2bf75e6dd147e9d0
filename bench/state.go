package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/client"

	"github.com/rtemu-dev/rtemu/emulatortest"
)

// stateMetrics: save and load of N sandboxes that each wrote 100 MB, against
// the raw engine doing the same through the same client (docker commit of
// each container, docker save of the images to a file; then docker load
// and a create and start per image), and a reset to a seed of N sandboxes.
// One sample each: a sample moves N × 100 MB through the engine twice.
func (b *bench) stateMetrics(ctx context.Context) ([]result, error) {
	n := 10
	if b.s.short {
		n = 2
	}
	const mb = 100
	dir, err := os.MkdirTemp("", "rtemu-bench-state-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	write := fmt.Sprintf("dd if=/dev/urandom of=/root/blob bs=1M count=%d 2>/dev/null", mb)

	// rtemu: N warmed sandboxes, saved through GET /_emulator/state.
	srv, a, err := b.server(ctx)
	if err != nil {
		return nil, err
	}
	closeSrv := sync.OnceValue(srv.Close)
	defer closeSrv()
	for i := 0; i < n; i++ {
		id, err := a.createRunning(ctx, map[string]any{"template": "base-ubuntu"})
		if err != nil {
			return nil, err
		}
		if err := a.exec(ctx, id, write); err != nil {
			return nil, err
		}
	}
	file := filepath.Join(dir, "state.tar")
	t := time.Now()
	if err := saveTo(ctx, srv, file); err != nil {
		return nil, err
	}
	save := time.Since(t)
	if err := closeSrv(); err != nil {
		return nil, err
	}

	// Loaded into a new rtemu: until every sandbox runs.
	srv2, err := emulatortest.Start(ctx)
	if err != nil {
		return nil, err
	}
	defer srv2.Close()
	// Its first create pays what every rtemu pays once (the engine's disk
	// limits, the exec agent's volume): not the load's.
	a2 := newAPI(srv2.URL, srv2.APIKey)
	if id, err := a2.createRunning(ctx, map[string]any{"template": "base-ubuntu"}); err != nil {
		return nil, err
	} else if err := a2.remove(ctx, id); err != nil {
		return nil, err
	}
	t = time.Now()
	if err := loadFrom(ctx, srv2, file); err != nil {
		return nil, err
	}
	load := time.Since(t)
	t = time.Now()
	restored, err := srv2.ResetToSeed(ctx)
	if err != nil {
		return nil, err
	}
	if restored != n {
		return nil, fmt.Errorf("reset to the seed restored %d sandboxes of %d", restored, n)
	}
	reset := time.Since(t)

	// The raw engine: N containers that wrote the same; commit and save;
	// remove the images; load and create.
	var ids []string
	for i := 0; i < n; i++ {
		id, err := b.raw.createStart(ctx, b.defaultNanoCPUs())
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
		if err := b.raw.exec(ctx, id, "/bin/sh", "-c", write); err != nil {
			return nil, err
		}
	}
	refs := make([]string, n)
	for i := range refs {
		refs[i] = fmt.Sprintf("rtemu-bench-state-%s:%d", b.raw.run, i)
	}
	defer func() {
		for _, ref := range refs {
			_, _ = b.raw.cli.ImageRemove(context.WithoutCancel(ctx), ref, client.ImageRemoveOptions{Force: true, PruneChildren: true})
		}
	}()
	rawFile := filepath.Join(dir, "raw.tar")
	t = time.Now()
	for i, id := range ids {
		if _, err := b.raw.cli.ContainerCommit(ctx, id, client.ContainerCommitOptions{Reference: refs[i]}); err != nil {
			return nil, err
		}
	}
	if err := rawSave(ctx, b.raw.cli, refs, rawFile); err != nil {
		return nil, err
	}
	rawSaveD := time.Since(t)
	for _, id := range ids {
		if err := b.raw.remove(ctx, id); err != nil {
			return nil, err
		}
	}
	for _, ref := range refs {
		if _, err := b.raw.cli.ImageRemove(ctx, ref, client.ImageRemoveOptions{PruneChildren: true}); err != nil {
			return nil, err
		}
	}
	t = time.Now()
	if err := rawLoad(ctx, b.raw.cli, rawFile); err != nil {
		return nil, err
	}
	for _, ref := range refs {
		b.raw.image = ref
		if _, err := b.raw.createStart(ctx, b.defaultNanoCPUs()); err != nil {
			return nil, err
		}
	}
	rawLoadD := time.Since(t)
	b.raw.image = b.img

	size := int64(0)
	if st, err := os.Stat(file); err == nil {
		size = st.Size() >> 20
	}
	note := fmt.Sprintf("%d sandboxes × %d MB, archive %d MB, one sample", n, mb, size)
	rows := []result{
		compare(fmt.Sprintf("state_save_%d", n), []time.Duration{save}, []time.Duration{rawSaveD}, "docker commit each + docker save", 1.2),
		compare(fmt.Sprintf("state_load_%d", n), []time.Duration{load}, []time.Duration{rawLoadD}, "docker load + create and start each", 1.2),
	}
	rows[0].Note, rows[1].Note = note, note
	rr := result{Metric: fmt.Sprintf("state_reset_seed_%d", n), RtemuP50: ms(reset), RtemuP95: ms(reset), N: 1,
		Target: "≤ 3000 ms", Met: reset <= 3*time.Second, Note: fmt.Sprintf("%d seeded sandboxes back, their images kept", n)}
	return append(rows, rr), nil
}

func saveTo(ctx context.Context, srv *emulatortest.Server, file string) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if err := srv.SaveState(ctx, f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func loadFrom(ctx context.Context, srv *emulatortest.Server, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/_emulator/state", f)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-tar")
	req.Header.Set("X-API-Key", srv.APIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("load: %d %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

func rawSave(ctx context.Context, cli *client.Client, refs []string, file string) error {
	rc, err := cli.ImageSave(ctx, refs)
	if err != nil {
		return err
	}
	defer rc.Close()
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, rc); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func rawLoad(ctx context.Context, cli *client.Client, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	res, err := cli.ImageLoad(ctx, f, client.ImageLoadWithQuiet(true))
	if err != nil {
		return err
	}
	defer res.Close()
	_, err = io.Copy(io.Discard, res)
	return err
}
