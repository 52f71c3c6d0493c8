package console

import (
	"github.com/sekisho/sekisho/internal/credential"
)

// HashPassword returns the encoded argon2id hash of pw with a fresh salt
// (credential.HashSecret).
func HashPassword(pw string) string { return credential.HashSecret(pw) }

// CheckPassword reports whether pw matches encoded, in constant time.
func CheckPassword(encoded, pw string) (bool, error) { return credential.CheckSecret(encoded, pw) }

// dummyHash is checked for unknown users, so a login for a name that does
// not exist costs what a wrong password costs (no timing oracle).
var dummyHash = HashPassword("not a password anyone has")
