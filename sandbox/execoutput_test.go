package sandbox

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
)

// An Output keeps the first max bytes, in memory while the shared budget
// lasts and in a spill file after, and writes them as JSON exactly as
// encoding/json writes the same string, whatever the bytes and wherever
// the pieces split runes.
func TestOutputKeepsAndEncodes(t *testing.T) {
	t.Parallel()
	// "é" is 2 bytes, "€" 3, "😀" 4: a run of them puts runes across
	// every chunk boundary.
	runes := strings.Repeat("aé€😀", outputChunk)
	invalid := string([]byte{0xff, 'x', 0xe2, 0x82, 'y', 0xc3}) // bad bytes, a cut rune, a cut rune at the end
	cases := []struct {
		name        string
		data        string
		max, budget int
		spilled     bool
	}{
		{"small, in memory", "hello\n<b>&\"quotes\"\t\x01", 1 << 20, 1 << 20, false},
		{"runes across chunks, in memory", runes, 1 << 20, 4 << 20, false},
		{"runes across chunks, spilled at once", runes, 1 << 20, outputChunk - 1, true},
		{"runes across chunks, spilled midway", runes, 1 << 20, 3 * outputChunk, true},
		{"invalid UTF-8", strings.Repeat(invalid, 20000), 1 << 20, 2 * outputChunk, true},
		{"truncated in memory", strings.Repeat("y\n", 1000), 999, 1 << 20, false},
		{"truncated spilled, mid-rune", runes, 3*outputChunk + 1, outputChunk, true},
		{"empty", "", 10, 10, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			b := newOutputBudget(tc.budget, dir)
			o := newOutput(b, tc.max)
			rng := rand.New(rand.NewPCG(1, uint64(len(tc.data))))
			for rest := tc.data; len(rest) > 0; {
				n := min(len(rest), 1+rng.IntN(3*outputChunk/2))
				if k, err := o.Write([]byte(rest[:n])); k != n || err != nil {
					t.Fatalf("Write gave %d, %v for %d bytes", k, err, n)
				}
				rest = rest[n:]
			}
			want := tc.data[:min(len(tc.data), tc.max)]
			if o.String() != want || o.Len() != len(want) {
				t.Errorf("kept %d bytes, want %d (equal: %v)", o.Len(), len(want), o.String() == want)
			}
			if o.Truncated() != (len(tc.data) > tc.max) {
				t.Errorf("truncated %v for %d bytes of %d", o.Truncated(), len(tc.data), tc.max)
			}
			if o.Spilled() != tc.spilled {
				t.Errorf("spilled %v, want %v", o.Spilled(), tc.spilled)
			}
			var got bytes.Buffer
			if err := o.WriteJSON(&got); err != nil {
				t.Fatal(err)
			}
			enc, _ := json.Marshal(want)
			if !bytes.Equal(got.Bytes(), enc) {
				t.Errorf("WriteJSON differs from encoding/json (%d and %d bytes)", got.Len(), len(enc))
			}
			if err := o.Close(); err != nil {
				t.Fatal(err)
			}
			if b.left != max(tc.budget, 0) {
				t.Errorf("budget %d after Close, want %d", b.left, tc.budget)
			}
			if es, _ := os.ReadDir(dir); len(es) != 0 {
				t.Errorf("spill files left: %v", es)
			}
			if _, err := o.Write([]byte("more")); err != nil || o.Close() != nil {
				t.Error("a closed Output must take writes and Closes quietly")
			}
		})
	}
}

// Commands writing at once share the budget: it is never overdrawn, what
// does not fit spills, each keeps its own bytes, and all of it comes back.
func TestOutputBudgetShared(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const budget = 8 * outputChunk
	b := newOutputBudget(budget, dir)
	var wg sync.WaitGroup
	outs := make([]*Output, 12)
	for i := range outs {
		outs[i] = newOutput(b, 1<<20)
		wg.Go(func() {
			line := []byte(strings.Repeat(string(rune('a'+i)), 999) + "\n")
			for range 100 {
				_, _ = outs[i].Write(line)
				b.mu.Lock()
				if b.left < 0 {
					t.Errorf("budget overdrawn: %d", b.left)
				}
				b.mu.Unlock()
			}
		})
	}
	wg.Wait()
	spilled := 0
	for i, o := range outs {
		if want := strings.Repeat(strings.Repeat(string(rune('a'+i)), 999)+"\n", 100); o.String() != want {
			t.Errorf("output %d differs", i)
		}
		if o.Spilled() {
			spilled++
		}
		_ = o.Close()
	}
	if spilled == 0 || spilled == len(outs) {
		t.Errorf("%d of %d outputs spilled; with room for about 8 chunks some must, not all", spilled, len(outs))
	}
	if b.left != budget {
		t.Errorf("budget %d after every Close, want %d", b.left, budget)
	}
	if es, _ := os.ReadDir(dir); len(es) != 0 {
		t.Errorf("spill files left: %d", len(es))
	}
}

// A spill folder that cannot be written keeps what is in memory and says
// the rest was lost.
func TestOutputSpillFails(t *testing.T) {
	t.Parallel()
	b := newOutputBudget(outputChunk, t.TempDir()+"/missing/folder")
	o := newOutput(b, 1<<20)
	data := strings.Repeat("z", outputChunk+10)
	_, _ = o.Write([]byte(data))
	if o.String() != data[:outputChunk] || !o.Truncated() {
		t.Errorf("kept %d bytes, truncated %v; want the %d in memory, truncated", o.Len(), o.Truncated(), outputChunk)
	}
	_ = o.Close()
	if b.left != outputChunk {
		t.Errorf("budget %d after Close", b.left)
	}
}
