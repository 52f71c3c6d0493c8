// Package audit is sekisho's evidence log: the record of who tried what,
// kept apart from debug logs so that noise can never push it out. Events
// are aggregated (a flood of one kind from one source becomes one record
// with an exact count, first and last time, and a few samples); state
// changes (a ban, a suspension) are always records of their own. Every
// record is chained to the one before by SHA-256, and signed checkpoints
// (size, hash, time) under an ed25519 key made on first start let anyone
// check that no record was edited, removed, reordered or cut off.
package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sekisho/sekisho/internal/store"
)

// Hash chains record r to the previous record's hash: SHA-256 over the
// previous hash and every field of r in a fixed, length-prefixed layout,
// so no two different records can encode alike.
func Hash(prev []byte, r store.AuditRecord) []byte {
	h := sha256.New()
	field := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	num := func(v int64) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(v))
		h.Write(n[:])
	}
	field(prev)
	num(r.Seq)
	num(r.At.UnixMilli())
	field([]byte(r.Type))
	field([]byte(r.Source))
	field([]byte(r.Target))
	num(r.Count)
	num(r.First.UnixMilli())
	num(r.Last.UnixMilli())
	field([]byte(r.Detail))
	return h.Sum(nil)
}

// KeyFile is the checkpoint signing key in the data directory.
const KeyFile = "audit.key"

// LoadKey reads the signing key from dir, creating it (0600) on first use.
// ErrNoKey is a data directory without a signing key yet.
var ErrNoKey = errors.New("audit: no signing key yet (the server makes it on first start)")

// ReadKey reads the signing key without making one: a reader (verify,
// export, the console) must never replace a lost key quietly.
func ReadKey(dir string) (ed25519.PrivateKey, error) {
	if _, err := os.Stat(filepath.Join(dir, KeyFile)); errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoKey
	}
	return LoadKey(dir)
}

func LoadKey(dir string) (ed25519.PrivateKey, error) {
	path := filepath.Join(dir, KeyFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("audit: create %s: %w", path, err)
		}
		_, werr := f.WriteString(hex.EncodeToString(priv.Seed()) + "\n")
		if cerr := f.Close(); werr != nil || cerr != nil {
			return nil, fmt.Errorf("audit: write %s: %w", path, errors.Join(werr, cerr))
		}
		return priv, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit: read %s: %w", path, err)
	}
	seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("audit: %s is not an ed25519 seed in hex", path)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// statement is what a checkpoint signs.
func statement(size int64, hash []byte, at time.Time) []byte {
	return fmt.Appendf(nil, "sekisho audit checkpoint\nsize %d\nhash %x\ntime %d\n", size, hash, at.UnixMilli())
}

// Sign makes a checkpoint of the log at size with last hash.
func Sign(key ed25519.PrivateKey, size int64, hash []byte, at time.Time) store.AuditCheckpoint {
	return store.AuditCheckpoint{Size: size, Hash: hash, At: at, Sig: ed25519.Sign(key, statement(size, hash, at))}
}

// VerifySig checks a checkpoint's signature.
func VerifySig(pub ed25519.PublicKey, c store.AuditCheckpoint) bool {
	return ed25519.Verify(pub, statement(c.Size, c.Hash, c.At), c.Sig)
}

// Problem is the first thing Verify found wrong.
type Problem struct {
	Seq    int64  // the first record concerned (0: the log as a whole)
	Reason string // what is wrong with it
}

func (p *Problem) Error() string {
	if p.Seq > 0 {
		return fmt.Sprintf("record %d: %s", p.Seq, p.Reason)
	}
	return p.Reason
}

// Verify checks records (all of them, in seq order) against their chain
// and against the checkpoints: numbering without gaps, each hash equal to
// the chain's, each checkpoint's signature and hash at its size, and no
// checkpoint beyond the end of the log. It returns nil or the first
// *Problem.
func Verify(recs []store.AuditRecord, cps []store.AuditCheckpoint, pub ed25519.PublicKey) error {
	return VerifyFrom(0, nil, recs, cps, pub)
}

// VerifyFrom is Verify for a log pruned up to anchorSeq, whose last
// removed record had anchorHash: the chain continues from there, and
// checkpoints from before it are no longer checked.
func VerifyFrom(anchorSeq int64, anchorHash []byte, recs []store.AuditRecord, cps []store.AuditCheckpoint, pub ed25519.PublicKey) error {
	prev := anchorHash
	hashAt := map[int64][]byte{anchorSeq: anchorHash}
	for i, r := range recs {
		if want := anchorSeq + int64(i+1); r.Seq != want {
			if r.Seq > want {
				return &Problem{Seq: want, Reason: "missing (deleted): the log jumps to record " + fmt.Sprint(r.Seq)}
			}
			return &Problem{Seq: r.Seq, Reason: "out of order"}
		}
		h := Hash(prev, r)
		if !bytes.Equal(h, r.Hash) {
			return &Problem{Seq: r.Seq, Reason: "does not match the chain: edited, or moved from elsewhere"}
		}
		prev = h
		hashAt[r.Seq] = h
	}
	size := anchorSeq + int64(len(recs))
	for _, c := range cps {
		if c.Size < anchorSeq {
			continue // vouches for records pruned (and summarised) since
		}
		if !VerifySig(pub, c) {
			return &Problem{Reason: fmt.Sprintf("checkpoint at size %d: bad signature", c.Size)}
		}
		if c.Size > size {
			return &Problem{Seq: size + 1, Reason: fmt.Sprintf("missing: the log was cut off; a checkpoint signed at %s vouches for %d records, the log has %d",
				c.At.UTC().Format(time.RFC3339), c.Size, size)}
		}
		if !bytes.Equal(hashAt[c.Size], c.Hash) {
			return &Problem{Seq: c.Size, Reason: "the log up to here differs from what the checkpoint signed at " + c.At.UTC().Format(time.RFC3339) + " vouches for (rewritten)"}
		}
	}
	return nil
}
