package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"rsc.io/qr"
)

// TOTP as RFC 6238 with the parameters every authenticator app reads:
// SHA-1, 6 digits, 30 s steps. One step either side is accepted for clock
// drift.
const (
	totpPeriod = 30
	totpSkew   = 1
	totpIssuer = "sekisho"
)

var totpOpts = totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// NewTOTPSecret returns a fresh 160-bit secret, base32 without padding.
func NewTOTPSecret() string {
	b := make([]byte, 20)
	rand.Read(b)
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)
}

// otpauthURL is what an authenticator app scans.
func otpauthURL(username, secret string) string {
	v := url.Values{"secret": {secret}, "issuer": {totpIssuer}, "algorithm": {"SHA1"}, "digits": {"6"}, "period": {"30"}}
	return "otpauth://totp/" + url.PathEscape(totpIssuer+":"+username) + "?" + v.Encode()
}

// totpStep returns the time step at which code is valid for secret, among
// now's step and one either side, or 0 when it is valid at none. The
// caller refuses a step not after the last one accepted: a code seen over
// someone's shoulder, or replayed from a captured request, is good once.
func totpStep(secret, code string, now time.Time) int64 {
	code = strings.TrimSpace(code)
	if len(code) != 6 {
		return 0
	}
	step := now.Unix() / totpPeriod
	var found int64
	for d := int64(-totpSkew); d <= totpSkew; d++ {
		want, err := totp.GenerateCodeCustom(secret, time.Unix((step+d)*totpPeriod, 0), totpOpts)
		if err != nil {
			return 0
		}
		// Every candidate is compared, in constant time, so the time
		// taken does not tell which step matched.
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			found = step + d
		}
	}
	return found
}

// validSecret tells whether s is a base32 secret of at least 128 bits.
func validSecret(s string) bool {
	b, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(s))
	return err == nil && len(b) >= 16
}

// qrSVG draws text as a QR code in SVG, for an enrolment or provisioning
// page. It is drawn here so that no secret goes to a third-party service.
func qrSVG(text string) (string, error) {
	c, err := qr.Encode(text, qr.M)
	if err != nil {
		return "", fmt.Errorf("console: qr: %w", err)
	}
	const quiet = 4
	n := c.Size + 2*quiet
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" shape-rendering="crispEdges"><rect width="100%%" height="100%%" fill="#fff"/><path fill="#000" d="`, n, n, n*6, n*6)
	for y := 0; y < c.Size; y++ {
		for x := 0; x < c.Size; x++ {
			if c.Black(x, y) {
				fmt.Fprintf(&b, "M%d %dh1v1h-1z", x+quiet, y+quiet)
			}
		}
	}
	b.WriteString(`"/></svg>`)
	return b.String(), nil
}

// TOTPStep is totpStep for other packages (the maintenance centre's
// operator logins): the time step at which code is valid for secret,
// among now's and one either side, or 0. The caller keeps the last step
// accepted and refuses any step not after it, so a code is good once.
func TOTPStep(secret, code string, now time.Time) int64 { return totpStep(secret, code, now) }

// QRSVG is qrSVG for other packages: text drawn as a QR code in SVG,
// here, so that no secret goes to a third-party service.
func QRSVG(text string) (string, error) { return qrSVG(text) }
