// tlogcheck checks a dataauth log with Go's own golang.org/x/mod/sumdb/note and
// sumdb/tlog packages: an implementation of signed notes and tiles that is not the
// project's. tests/test_tiles.py builds and runs it.
//
//	tlogcheck paths N...          Go's tile path of each index N (level 0, full)
//	tlogcheck tiles SIZE          the tiles (L N W) a tree of SIZE is made of
//	tlogcheck verify URL VKEY TOKEN
//	                              open /checkpoint with VKEY, read the tree through
//	                              tlog.TileHashReader (which checks every tile it loads
//	                              against the checkpoint's root), and check every entry
//	                              of every bundle with a record proof
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const height = 8

var base, token string

func get(path string) ([]byte, int, error) {
	req, err := http.NewRequest("GET", base+"/"+path, nil)
	if err != nil {
		return nil, 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return body, resp.StatusCode, err
}

// c2spPath is Go's sumdb tile path without the height element C2SP leaves out
// ("tile/8/0/x001/234" is "tile/0/x001/234"; data tiles are "tile/entries/...").
func c2spPath(t tlog.Tile) string {
	p := strings.TrimPrefix(t.Path(), fmt.Sprintf("tile/%d/", height))
	if strings.HasPrefix(p, "data/") {
		p = "entries/" + strings.TrimPrefix(p, "data/")
	}
	return "tile/" + p
}

type reader struct{}

func (reader) Height() int { return height }

func (reader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		body, status, err := get(c2spPath(t))
		if err != nil {
			return nil, err
		}
		if status != 200 {
			return nil, fmt.Errorf("%s: status %d", c2spPath(t), status)
		}
		out[i] = body
	}
	return out, nil
}

func (reader) SaveTiles([]tlog.Tile, [][]byte) {}

func entries(n int64, w int) ([][]byte, error) {
	t := tlog.Tile{H: height, L: -1, N: n, W: w}
	body, status, err := get(c2spPath(t))
	prefix := 2
	if err == nil && status == 404 && bytes.Contains(body, []byte("entry_too_large")) {
		suffix := strings.TrimPrefix(c2spPath(t), "tile/entries/")
		body, status, err = get("entries-wide/" + suffix)
		prefix = 4
	}
	if err != nil {
		return nil, err
	}
	if status != 200 {
		return nil, fmt.Errorf("%s: status %d", c2spPath(t), status)
	}
	var out [][]byte
	for len(body) > 0 {
		if len(body) < prefix {
			return nil, fmt.Errorf("bundle %d: truncated", n)
		}
		var size int
		if prefix == 2 {
			size = int(binary.BigEndian.Uint16(body))
		} else {
			size = int(binary.BigEndian.Uint32(body))
		}
		body = body[prefix:]
		if len(body) < size {
			return nil, fmt.Errorf("bundle %d: truncated entry", n)
		}
		out = append(out, body[:size])
		body = body[size:]
	}
	return out, nil
}

func verify(vkey string) error {
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return err
	}
	msg, status, err := get("checkpoint")
	if err != nil || status != 200 {
		return fmt.Errorf("checkpoint: %v %d", err, status)
	}
	n, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		return err
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 || lines[0] != verifier.Name() {
		return fmt.Errorf("checkpoint: origin %q is not the key's name", lines[0])
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		return err
	}
	rootBytes, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(rootBytes) != tlog.HashSize {
		return fmt.Errorf("checkpoint: bad root")
	}
	var root tlog.Hash
	copy(root[:], rootBytes)
	hr := tlog.TileHashReader(tlog.Tree{N: size, Hash: root}, reader{})
	th, err := tlog.TreeHash(size, hr)
	if err != nil {
		return err
	}
	if th != root {
		return fmt.Errorf("tree hash %v is not the checkpoint's %v", th, root)
	}
	for start := int64(0); start < size; start += 1 << height {
		w := int(size - start)
		if w > 1<<height {
			w = 1 << height
		}
		bundle, err := entries(start>>height, w)
		if err != nil {
			return err
		}
		if len(bundle) != w {
			return fmt.Errorf("bundle %d holds %d entries, not %d", start>>height, len(bundle), w)
		}
		for i, data := range bundle {
			index := start + int64(i)
			proof, err := tlog.ProveRecord(size, index, hr)
			if err != nil {
				return fmt.Errorf("entry %d: %v", index, err)
			}
			if err := tlog.CheckRecord(proof, size, root, index, tlog.RecordHash(data)); err != nil {
				return fmt.Errorf("entry %d: %v", index, err)
			}
		}
	}
	fmt.Printf("verified %d entries of %s\n", size, lines[0])
	return nil
}

func main() {
	args := os.Args[1:]
	var err error
	switch {
	case len(args) >= 1 && args[0] == "paths":
		for _, a := range args[1:] {
			n, _ := strconv.ParseInt(a, 10, 64)
			fmt.Println(c2spPath(tlog.Tile{H: height, L: 0, N: n, W: 1 << height}))
		}
	case len(args) == 2 && args[0] == "tiles":
		size, _ := strconv.ParseInt(args[1], 10, 64)
		// NewTiles lists every width of a partial tile (sumdb publishes each); the
		// tree's own is the widest
		last := map[[2]int64]tlog.Tile{}
		var order [][2]int64
		for _, t := range tlog.NewTiles(height, 0, size) {
			key := [2]int64{int64(t.L), t.N}
			if _, seen := last[key]; !seen {
				order = append(order, key)
			}
			last[key] = t
		}
		for _, key := range order {
			t := last[key]
			fmt.Printf("%d %d %d\n", t.L, t.N, t.W)
		}
	case len(args) == 4 && args[0] == "verify":
		base, token = strings.TrimRight(args[1], "/"), args[3]
		err = verify(args[2])
	default:
		err = fmt.Errorf("usage: tlogcheck paths N... | tiles SIZE | verify URL VKEY TOKEN")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAILED:", err)
		os.Exit(1)
	}
}
