package console

// StyleCSS returns the console's stylesheet, so that the maintenance
// centre's fleet dashboard looks like the unit console without a copy of
// it to keep in step.
func StyleCSS() []byte {
	b, _ := webFS.ReadFile("web/style.css") // embedded: cannot fail
	return b
}
