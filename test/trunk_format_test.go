package test

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestTrunkNumberFormat: a carrier that wants numbers as its own
// subscribers dial them (national format) gets 010 + the E.164 digits for
// a call abroad, built from the canonical number: a smartphone's +232...
// and a desk phone's 0 010 232... reach it the same way.
func TestTrunkNumberFormat(t *testing.T) {
	requireTool(t, "sipp")
	p, pw201, _, carrierPort := startPBXWithTrunk(t)
	p.run(t, "trunk", "del", "carrier")
	pwFile := filepath.Join(t.TempDir(), "trunk-password")
	if err := os.WriteFile(pwFile, []byte(trunkPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.run(t, "trunk", "add", "carrier", "--peer", net.JoinHostPort(carrierIP, strconv.Itoa(carrierPort)),
		"--username", trunkUser, "--password-file", pwFile, "--caller-id", trunkCallerID, "--number-format", "national")
	p.run(t, "ext", "set", "201", "--class", "international", "--countries", "SL")
	time.Sleep(policyReload)
	for _, dial := range []string{"%2B23276123456", "0003301023276123456"} {
		_, cr := callOut(t, p, pw201, carrierPort, dial, "uac_call.xml")
		invites := cr.received("INVITE ")
		if len(invites) != 2 || !strings.HasPrefix(invites[1].First, "INVITE sip:01023276123456@") {
			t.Errorf("dialled %s: carrier got %d INVITEs, last %q; want sip:01023276123456@...", dial, len(invites), invites[len(invites)-1].First)
		}
	}
}
