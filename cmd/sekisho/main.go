// Command sekisho is an IP-PBX built so that toll fraud cannot get
// through. See README.md.
package main

import (
	"os"

	"github.com/sekisho/sekisho/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], cli.Env{Stdout: os.Stdout, Stderr: os.Stderr}))
}
