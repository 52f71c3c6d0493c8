package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sekisho/sekisho/internal/store"
)

// This file holds openapi.json to the handlers: the operations it lists
// are the routes registered, the roles it names are the roles enforced,
// and every response the tests see (in every test of the package, through
// the harness) has a documented status and a body valid against the
// documented schema. The validator covers the subset of JSON Schema the
// document uses, and refuses any other keyword, so that nothing in the
// document goes unchecked.

// apiDoc is openapi.json, parsed.
type apiDoc struct {
	root map[string]any
	ops  []*docOp
}

// docOp is one operation of the document.
type docOp struct {
	method, path string // "GET", "/api/extensions/{number}"
	loc          string // JSON pointer of the operation object
	obj          map[string]any
	role         string // x-role: none, maintenance, operator, admin
	authed       bool   // needs the session cookie
	hasBody      bool   // documents a request body
}

func (o *docOp) key() string { return o.method + " " + o.path }

var (
	docOnce sync.Once
	docVal  *apiDoc
	docErr  error
)

// loadDoc parses the embedded openapi.json once.
func loadDoc(t *testing.T) *apiDoc {
	t.Helper()
	docOnce.Do(func() { docVal, docErr = parseDoc(openapiSpec) })
	if docErr != nil {
		t.Fatalf("openapi.json: %v", docErr)
	}
	return docVal
}

func parseDoc(b []byte) (*apiDoc, error) {
	var root map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&root); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	d := &apiDoc{root: root}
	paths, _ := root["paths"].(map[string]any)
	for p, pv := range paths {
		item, ok := pv.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("paths[%s] is not an object", p)
		}
		for m, ov := range item {
			if m == "parameters" || m == "summary" || m == "description" {
				continue
			}
			obj, ok := ov.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s %s is not an object", m, p)
			}
			role, _ := obj["x-role"].(string)
			sec, _ := obj["security"].([]any)
			_, body := obj["requestBody"]
			d.ops = append(d.ops, &docOp{method: strings.ToUpper(m), path: p, loc: "#/paths/" + escPointer(p) + "/" + m,
				obj: obj, role: role, authed: len(sec) > 0, hasBody: body})
		}
	}
	sort.Slice(d.ops, func(i, j int) bool { return d.ops[i].key() < d.ops[j].key() })
	return d, nil
}

func escPointer(s string) string { return strings.NewReplacer("~", "~0", "/", "~1").Replace(s) }

// clone returns a deep copy of the document, for tests that break it.
func (d *apiDoc) clone(t *testing.T) map[string]any {
	t.Helper()
	b, err := json.Marshal(d.root)
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&root); err != nil {
		t.Fatal(err)
	}
	return root
}

func mustParseDoc(t *testing.T, root map[string]any) *apiDoc {
	t.Helper()
	b, err := json.Marshal(root)
	if err != nil {
		t.Fatal(err)
	}
	d, err := parseDoc(b)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (d *apiDoc) operations() []*docOp { return d.ops }

// find returns the operation documented for method and a concrete path;
// a literal path wins over a template.
func (d *apiDoc) find(method, path string) *docOp {
	var best *docOp
	for _, o := range d.ops {
		if o.method != method {
			continue
		}
		if o.path == path {
			return o
		}
		if best == nil && matchTemplate(o.path, path) {
			best = o
		}
	}
	return best
}

func matchTemplate(tmpl, path string) bool {
	ts, ps := strings.Split(tmpl, "/"), strings.Split(path, "/")
	if len(ts) != len(ps) {
		return false
	}
	for i := range ts {
		if strings.HasPrefix(ts[i], "{") && strings.HasSuffix(ts[i], "}") {
			if ps[i] == "" {
				return false
			}
		} else if ts[i] != ps[i] {
			return false
		}
	}
	return true
}

// pointer resolves a local JSON pointer such as #/components/schemas/X.
func (d *apiDoc) pointer(ref string) (any, bool) {
	if !strings.HasPrefix(ref, "#/") {
		return nil, false
	}
	var cur any = d.root
	for _, part := range strings.Split(ref[2:], "/") {
		part = strings.NewReplacer("~1", "/", "~0", "~").Replace(part)
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// deref follows $ref to an object, returning it and where it is.
func (d *apiDoc) deref(v any, loc string) (map[string]any, string, error) {
	for range 10 {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, loc, fmt.Errorf("%s is not an object", loc)
		}
		ref, ok := m["$ref"].(string)
		if !ok {
			return m, loc, nil
		}
		if v, ok = d.pointer(ref); !ok {
			return nil, loc, fmt.Errorf("%s: $ref %q points nowhere", loc, ref)
		}
		loc = ref
	}
	return nil, loc, fmt.Errorf("%s: $ref loop", loc)
}

// coverage counts what the requests of a test exercised.
type coverage struct {
	mu       sync.Mutex
	statuses map[string]map[int]bool // operation -> statuses seen
	props    map[string]bool         // schema location of a property seen
}

func newCoverage() *coverage {
	return &coverage{statuses: map[string]map[int]bool{}, props: map[string]bool{}}
}

func (c *coverage) status(op *docOp, code int) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.statuses[op.key()] == nil {
		c.statuses[op.key()] = map[int]bool{}
	}
	c.statuses[op.key()][code] = true
}

func (c *coverage) prop(loc string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.props[loc] = true
	c.mu.Unlock()
}

// knownKeywords are the schema keywords the validator understands; the
// annotations among them (description, format but date-time, example) do
// not constrain.
var knownKeywords = map[string]bool{"$ref": true, "type": true, "properties": true, "required": true, "items": true,
	"additionalProperties": true, "enum": true, "description": true, "format": true, "example": true}

// validate checks v against schema, recording the properties seen.
func (d *apiDoc) validate(schema any, v any, loc, at string, cov *coverage) []string {
	s, loc, err := d.deref(schema, loc)
	if err != nil {
		return []string{err.Error()}
	}
	var probs []string
	bad := func(format string, a ...any) { probs = append(probs, at+": "+fmt.Sprintf(format, a...)) }
	for k := range s {
		if !knownKeywords[k] {
			bad("schema %s uses %q, which the test's validator does not check", loc, k)
		}
	}
	if tv, ok := s["type"]; ok {
		var types []string
		switch tv := tv.(type) {
		case string:
			types = []string{tv}
		case []any:
			for _, x := range tv {
				s, _ := x.(string)
				types = append(types, s)
			}
		}
		if !slices.ContainsFunc(types, func(t string) bool { return hasType(v, t) }) {
			bad("%s where %v is documented (%s)", jsonKind(v), types, loc)
			return probs
		}
	}
	if enum, ok := s["enum"].([]any); ok && !slices.ContainsFunc(enum, func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(v) }) {
		bad("%v is not one of %v (%s)", v, enum, loc)
	}
	if f, _ := s["format"].(string); f == "date-time" {
		if str, ok := v.(string); ok {
			if _, err := time.Parse(time.RFC3339Nano, str); err != nil {
				bad("%q is not a date-time (%s)", str, loc)
			}
		}
	}
	switch val := v.(type) {
	case map[string]any:
		props, _ := s["properties"].(map[string]any)
		req, _ := s["required"].([]any)
		for _, r := range req {
			if _, ok := val[r.(string)]; !ok {
				bad("required property %q missing (%s)", r, loc)
			}
		}
		for k, pv := range val {
			if ps, ok := props[k]; ok {
				cov.prop(loc + "/properties/" + k)
				probs = append(probs, d.validate(ps, pv, loc+"/properties/"+k, at+"."+k, cov)...)
				continue
			}
			switch ap := s["additionalProperties"].(type) {
			case bool:
				if !ap {
					bad("property %q is not documented (%s)", k, loc)
				}
			case map[string]any:
				cov.prop(loc + "/additionalProperties")
				probs = append(probs, d.validate(ap, pv, loc+"/additionalProperties", at+"."+k, cov)...)
			}
		}
	case []any:
		if items, ok := s["items"]; ok {
			for i, e := range val {
				probs = append(probs, d.validate(items, e, loc+"/items", fmt.Sprintf("%s[%d]", at, i), cov)...)
			}
		}
	}
	return probs
}

func hasType(v any, t string) bool {
	switch t {
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "null":
		return v == nil
	case "number":
		_, ok := v.(json.Number)
		return ok
	case "integer":
		n, ok := v.(json.Number)
		if !ok {
			return false
		}
		_, err := strconv.ParseInt(n.String(), 10, 64)
		return err == nil
	}
	return false
}

func jsonKind(v any) string {
	switch v := v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return fmt.Sprintf("string %q", v)
	case bool:
		return fmt.Sprintf("boolean %v", v)
	case json.Number:
		return "number " + v.String()
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

func decodeJSON(b []byte) (any, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("more than one JSON value")
	}
	return v, nil
}

// checkResponse holds one response to the document.
func (d *apiDoc) checkResponse(method, path string, code int, h http.Header, body []byte, cov *coverage) []string {
	op := d.find(method, path)
	if op == nil {
		return []string{"no operation " + method + " " + path + " is documented"}
	}
	responses, _ := op.obj["responses"].(map[string]any)
	rv, ok := responses[strconv.Itoa(code)]
	if !ok {
		return []string{fmt.Sprintf("status %d is not documented for %s (documented: %v)", code, op.key(), slices.Sorted(mapKeys(responses)))}
	}
	cov.status(op, code)
	resp, loc, err := d.deref(rv, op.loc+"/responses/"+strconv.Itoa(code))
	if err != nil {
		return []string{err.Error()}
	}
	var probs []string
	headers, _ := resp["headers"].(map[string]any)
	for name, hv := range headers {
		hm, _, err := d.deref(hv, loc+"/headers/"+name)
		if err != nil {
			probs = append(probs, err.Error())
			continue
		}
		if hm["required"] == true && h.Get(name) == "" {
			probs = append(probs, "header "+name+" is documented as always sent, and is missing")
		}
	}
	content, _ := resp["content"].(map[string]any)
	if len(content) == 0 {
		if len(body) > 0 {
			probs = append(probs, "a body, where none is documented")
		}
		return probs
	}
	mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	media, ok := content[mt].(map[string]any)
	if !ok {
		return append(probs, fmt.Sprintf("content type %q is not documented for status %d (documented: %v)", mt, code, slices.Sorted(mapKeys(content))))
	}
	if mt != "application/json" {
		return probs
	}
	v, err := decodeJSON(body)
	if err != nil {
		return append(probs, "the body is not JSON: "+err.Error())
	}
	return append(probs, d.validate(media["schema"], v, loc+"/content/application~1json/schema", "body", cov)...)
}

// checkRequest holds a request to the document: its query parameters are
// documented, and its body is valid against the documented schema.
func (d *apiDoc) checkRequest(method, target, body string, cov *coverage) []string {
	u, err := url.Parse(target)
	if err != nil {
		return []string{err.Error()}
	}
	op := d.find(method, u.Path)
	if op == nil {
		return []string{"no operation " + method + " " + u.Path + " is documented"}
	}
	var probs []string
	for k := range u.Query() {
		if !slices.ContainsFunc(d.params(op), func(p map[string]any) bool { return p["in"] == "query" && p["name"] == k }) {
			probs = append(probs, "query parameter "+k+" is not documented")
		}
	}
	rbv, ok := op.obj["requestBody"]
	if !ok {
		if body != "" {
			probs = append(probs, "a request body, where none is documented")
		}
		return probs
	}
	rb, loc, err := d.deref(rbv, op.loc+"/requestBody")
	if err != nil {
		return append(probs, err.Error())
	}
	if body == "" {
		if rb["required"] == true {
			probs = append(probs, "no request body, where one is required")
		}
		return probs
	}
	content, _ := rb["content"].(map[string]any)
	media, ok := content["application/json"].(map[string]any)
	if !ok {
		return append(probs, "no application/json request body documented")
	}
	v, err := decodeJSON([]byte(body))
	if err != nil {
		return append(probs, "the request body is not JSON: "+err.Error())
	}
	return append(probs, d.validate(media["schema"], v, loc+"/content/application~1json/schema", "request", cov)...)
}

// params are an operation's parameters with its path's.
func (d *apiDoc) params(op *docOp) []map[string]any {
	var out []map[string]any
	item, _ := d.pointer("#/paths/" + escPointer(op.path))
	for _, src := range []any{item.(map[string]any)["parameters"], op.obj["parameters"]} {
		list, _ := src.([]any)
		for i, pv := range list {
			if p, _, err := d.deref(pv, fmt.Sprintf("%s/parameters/%d", op.loc, i)); err == nil {
				out = append(out, p)
			}
		}
	}
	return out
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// propLocs lists the property locations of the schemas below schema, as
// validate records them.
func (d *apiDoc) propLocs(schema any, loc string, out map[string]bool, seen map[string]bool) {
	s, loc, err := d.deref(schema, loc)
	if err != nil || seen[loc] {
		return
	}
	seen[loc] = true
	props, _ := s["properties"].(map[string]any)
	for k, ps := range props {
		out[loc+"/properties/"+k] = true
		d.propLocs(ps, loc+"/properties/"+k, out, seen)
	}
	if items, ok := s["items"]; ok {
		d.propLocs(items, loc+"/items", out, seen)
	}
	if ap, ok := s["additionalProperties"].(map[string]any); ok {
		out[loc+"/additionalProperties"] = true
		d.propLocs(ap, loc+"/additionalProperties", out, seen)
	}
}

// responseProps and requestProps are every documented property of the
// JSON bodies of responses and of requests.
func (d *apiDoc) responseProps() map[string]bool {
	out, seen := map[string]bool{}, map[string]bool{}
	for _, op := range d.ops {
		responses, _ := op.obj["responses"].(map[string]any)
		for code, rv := range responses {
			resp, loc, err := d.deref(rv, op.loc+"/responses/"+code)
			if err != nil {
				continue
			}
			content, _ := resp["content"].(map[string]any)
			if media, ok := content["application/json"].(map[string]any); ok {
				d.propLocs(media["schema"], loc+"/content/application~1json/schema", out, seen)
			}
		}
	}
	return out
}

func (d *apiDoc) requestProps() map[string]bool {
	out, seen := map[string]bool{}, map[string]bool{}
	for _, op := range d.ops {
		if rbv, ok := op.obj["requestBody"]; ok {
			if rb, loc, err := d.deref(rbv, op.loc+"/requestBody"); err == nil {
				content, _ := rb["content"].(map[string]any)
				if media, ok := content["application/json"].(map[string]any); ok {
					d.propLocs(media["schema"], loc+"/content/application~1json/schema", out, seen)
				}
			}
		}
	}
	return out
}

// registeredRoutes reads the API routes the package registers from its
// source: every HandleFunc or Handle pattern under /api/.
func registeredRoutes(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`\.Handle(?:Func)?\(\s*"(?:([A-Z]+) +)?([^"]*)"`)
	out := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(src), -1) {
			if !strings.HasPrefix(m[2], "/api/") {
				continue
			}
			if m[1] == "" {
				t.Errorf("%s registers %q for every method: name the method, and document it", f, m[2])
				continue
			}
			out[m[1]+" "+m[2]] = true
		}
	}
	if len(out) == 0 {
		t.Fatal("found no routes in the package's source: the pattern no longer matches how routes are registered")
	}
	return out
}

// compareRoutes lists the differences between the documented operations
// and the registered routes.
func compareRoutes(d *apiDoc, registered map[string]bool) []string {
	var diff []string
	documented := map[string]bool{}
	for _, op := range d.ops {
		documented[op.key()] = true
		if !registered[op.key()] {
			diff = append(diff, op.key()+" is documented and not registered")
		}
	}
	for r := range registered {
		if !documented[r] {
			diff = append(diff, r+" is registered and not documented")
		}
	}
	sort.Strings(diff)
	return diff
}

// muxRefused tells whether the mux itself refused a request (no route
// for the path, or not for the method): its answers are text, where the
// handlers' are JSON (or the CSV).
func muxRefused(w *httptest.ResponseRecorder) bool {
	mt, _, _ := mime.ParseMediaType(w.Header().Get("Content-Type"))
	return (w.Code == 404 || w.Code == 405) && mt == "text/plain"
}

// samplePath fills a template's parameters.
func samplePath(p string) string {
	return strings.NewReplacer("{number}", "999", "{prefix}", "+999", "{address}", "203.0.113.250", "{username}", "nobody").Replace(p)
}

// TestOpenAPIRoutes: the document's operations are the routes registered,
// and every one of them reaches a handler (not the mux's 404 or 405).
func TestOpenAPIRoutes(t *testing.T) {
	d := loadDoc(t)
	reg := registeredRoutes(t)
	for _, p := range compareRoutes(d, reg) {
		t.Error(p)
	}
	h := newHarness(t)
	admin := h.setupAdmin()
	routes := map[string]bool{}
	for r := range reg {
		routes[r] = true
	}
	for _, op := range d.ops {
		routes[op.key()] = true
	}
	for r := range routes {
		method, path, _ := strings.Cut(r, " ")
		w := h.raw(method, samplePath(path), admin)
		if muxRefused(w) {
			t.Errorf("%s: the mux answers %d: no handler is registered for it", r, w.Code)
		}
	}
	// The probe tells a missing route apart.
	for _, r := range [][2]string{{"PATCH", "/api/trunks"}, {"GET", "/api/nothing-here"}} {
		if w := h.raw(r[0], r[1], admin); !muxRefused(w) {
			t.Errorf("%s %s: %d %s, want the mux's refusal: muxRefused cannot tell a missing route", r[0], r[1], w.Code, w.Body)
		}
	}
}

// raw sends a request without holding it to the document.
func (h *harness) raw(method, path string, cookie *http.Cookie) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, strings.NewReader(""))
	r.RemoteAddr = "127.0.0.1:50000"
	if cookie != nil {
		r.AddCookie(cookie)
	}
	w := httptest.NewRecorder()
	h.s.ServeHTTP(w, r)
	return w
}

// TestOpenAPIDocument checks the document's own rules: version, the
// cookie scheme, a role and a security requirement on every operation,
// parameters for every path template, the error schema, strict object
// schemas (additionalProperties stated), and only keywords the validator
// checks.
func TestOpenAPIDocument(t *testing.T) {
	d := loadDoc(t)
	if v, _ := d.root["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		t.Errorf("openapi %q, want 3.1.x", v)
	}
	info, _ := d.root["info"].(map[string]any)
	desc, _ := info["description"].(string)
	for _, w := range []string{"cross-origin", "403", "admin", "operator", "maintenance", "sekisho_session", "x-role"} {
		if !strings.Contains(strings.ToLower(desc), strings.ToLower(w)) {
			t.Errorf("info.description does not explain %q", w)
		}
	}
	scheme, _ := d.pointer("#/components/securitySchemes/sekisho_session")
	if sm, _ := scheme.(map[string]any); sm["type"] != "apiKey" || sm["in"] != "cookie" || sm["name"] != cookieName {
		t.Errorf("security scheme sekisho_session %v, want an apiKey in the cookie %s", scheme, cookieName)
	}
	errSchema, _ := d.pointer("#/components/schemas/Error")
	if v := d.validate(errSchema, map[string]any{"error": "x", "field": "y"}, "#/components/schemas/Error", "error", nil); len(v) > 0 {
		t.Errorf("the Error schema refuses an error body: %v", v)
	}
	if v := d.validate(errSchema, map[string]any{"field": "y"}, "#/components/schemas/Error", "error", nil); len(v) == 0 {
		t.Error("the Error schema does not require error")
	}
	ids := map[string]bool{}
	allowed := map[string]bool{"200": true, "201": true, "400": true, "401": true, "403": true, "404": true, "409": true, "429": true, "500": true}
	for _, op := range d.ops {
		k := op.key()
		id, _ := op.obj["operationId"].(string)
		if id == "" || ids[id] {
			t.Errorf("%s: operationId %q missing or not unique", k, id)
		}
		ids[id] = true
		if s, _ := op.obj["summary"].(string); s == "" {
			t.Errorf("%s: no summary", k)
		}
		switch op.role {
		case "none":
			if sec, ok := op.obj["security"].([]any); !ok || len(sec) != 0 {
				t.Errorf("%s: x-role none wants security: [] (stated, empty)", k)
			}
		case RoleMaintenance, RoleOperator, RoleAdmin:
			sec, _ := op.obj["security"].([]any)
			if len(sec) != 1 || fmt.Sprint(sec[0]) != "map[sekisho_session:[]]" {
				t.Errorf("%s: security %v, want [{sekisho_session: []}]", k, sec)
			}
		default:
			t.Errorf("%s: x-role %q, want none, maintenance, operator or admin", k, op.role)
		}
		responses, _ := op.obj["responses"].(map[string]any)
		for code := range responses {
			if !allowed[code] {
				t.Errorf("%s: status %s is not one the console answers", k, code)
			}
		}
		for _, code := range []string{"403"} {
			if _, ok := responses[code]; !ok {
				t.Errorf("%s: no %s (every request from outside the admin networks gets it)", k, code)
			}
		}
		if op.authed {
			if _, ok := responses["401"]; !ok {
				t.Errorf("%s: needs a session and documents no 401", k)
			}
		}
		for code, rv := range responses {
			resp, loc, err := d.deref(rv, op.loc+"/responses/"+code)
			if err != nil {
				t.Error(err)
				continue
			}
			if s, _ := resp["description"].(string); s == "" {
				t.Errorf("%s: response %s has no description", k, code)
			}
			content, _ := resp["content"].(map[string]any)
			if len(content) == 0 {
				t.Errorf("%s %s: no content documented (%s)", k, code, loc)
			}
			if code[0] != '2' {
				if media, ok := content["application/json"].(map[string]any); !ok || !strings.HasPrefix(fmt.Sprint(media["schema"]), "map[$ref:#/components/schemas/") {
					t.Errorf("%s %s: an error answer without a JSON error schema", k, code)
				}
			}
		}
		// Path parameters: each template parameter declared, in: path, required.
		var declared []string
		for _, p := range d.params(op) {
			if p["in"] == "path" {
				declared = append(declared, p["name"].(string))
				if p["required"] != true {
					t.Errorf("%s: path parameter %v not required", k, p["name"])
				}
			}
			if _, ok := p["schema"]; !ok {
				t.Errorf("%s: parameter %v has no schema", k, p["name"])
			}
		}
		var inPath []string
		for _, m := range regexp.MustCompile(`\{([^}]+)\}`).FindAllStringSubmatch(op.path, -1) {
			inPath = append(inPath, m[1])
		}
		slices.Sort(declared)
		slices.Sort(inPath)
		if !slices.Equal(declared, inPath) {
			t.Errorf("%s: path parameters declared %v, in the path %v", k, declared, inPath)
		}
		if op.hasBody {
			rb, loc, err := d.deref(op.obj["requestBody"], op.loc+"/requestBody")
			if err != nil {
				t.Error(err)
				continue
			}
			content, _ := rb["content"].(map[string]any)
			media, _ := content["application/json"].(map[string]any)
			s, sloc, err := d.deref(media["schema"], loc+"/content/application~1json/schema")
			if err != nil {
				t.Errorf("%s: request body: %v", k, err)
				continue
			}
			if s["type"] != "object" || s["additionalProperties"] != false {
				t.Errorf("%s: request body schema %s must be an object with additionalProperties: false (the handlers refuse unknown fields)", k, sloc)
			}
		}
	}
	// Every schema: known keywords, objects strict, required among properties.
	var walk func(v any, loc string)
	walk = func(v any, loc string) {
		s, ok := v.(map[string]any)
		if !ok {
			t.Errorf("%s: a schema must be an object", loc)
			return
		}
		if _, ok := s["$ref"]; ok {
			if len(s) != 1 {
				t.Errorf("%s: $ref with siblings (ignored by the validator)", loc)
			}
			if _, _, err := d.deref(s, loc); err != nil {
				t.Error(err)
			}
			return
		}
		for k := range s {
			if !knownKeywords[k] {
				t.Errorf("%s: keyword %q is not checked by the test's validator", loc, k)
			}
		}
		if _, ok := s["type"]; !ok {
			t.Errorf("%s: no type", loc)
		}
		props, hasProps := s["properties"].(map[string]any)
		if s["type"] == "object" || hasProps {
			if s["type"] != "object" {
				t.Errorf("%s: properties without type object", loc)
			}
			if _, ok := s["additionalProperties"]; !ok {
				t.Errorf("%s: an object schema must state additionalProperties", loc)
			}
		}
		req, _ := s["required"].([]any)
		for _, r := range req {
			if _, ok := props[r.(string)]; !ok {
				t.Errorf("%s: required %v is not a property", loc, r)
			}
		}
		for k, p := range props {
			walk(p, loc+"/properties/"+k)
		}
		if items, ok := s["items"]; ok {
			walk(items, loc+"/items")
		} else if s["type"] == "array" {
			t.Errorf("%s: an array without items", loc)
		}
		if ap, ok := s["additionalProperties"].(map[string]any); ok {
			walk(ap, loc+"/additionalProperties")
		}
	}
	schemas, _ := d.pointer("#/components/schemas")
	for name, s := range schemas.(map[string]any) {
		walk(s, "#/components/schemas/"+name)
	}
	for _, op := range d.ops {
		var visit func(v any, loc string)
		visit = func(v any, loc string) {
			switch v := v.(type) {
			case map[string]any:
				for k, x := range v {
					if k == "schema" {
						walk(x, loc+"/schema")
					} else {
						visit(x, loc+"/"+escPointer(k))
					}
				}
			case []any:
				for i, x := range v {
					visit(x, fmt.Sprintf("%s/%d", loc, i))
				}
			}
		}
		visit(op.obj, op.loc)
	}
}

// TestOpenAPIServed: GET /api/openapi.json is the document, as JSON, with
// no session needed.
func TestOpenAPIServed(t *testing.T) {
	h := newHarness(t)
	w := h.do("GET", "/api/openapi.json", "", nil)
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("GET /api/openapi.json: %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	if !bytes.Equal(w.Body.Bytes(), openapiSpec) {
		t.Fatal("the served document is not the embedded openapi.json")
	}
	if !json.Valid(w.Body.Bytes()) {
		t.Fatal("openapi.json is not valid JSON")
	}
}

// TestOpenAPIRoles: the role each operation documents is the role it
// needs: below it, 403; at it, past the check.
func TestOpenAPIRoles(t *testing.T) {
	h := newHarness(t)
	admin, op, vendor := h.staff()
	cookies := map[string]*http.Cookie{RoleAdmin: admin, RoleOperator: op, RoleMaintenance: vendor}
	for _, o := range h.spec.ops {
		if !o.authed {
			continue
		}
		p, ok := probes[o.key()]
		if !ok {
			t.Errorf("%s: no probe request in the test: add one to probes", o.key())
			continue
		}
		for _, role := range []string{RoleMaintenance, RoleOperator, RoleAdmin} {
			r := p
			r.cookie = cookies[role]
			if o.key() == "POST /api/logout" {
				r.cookie = h.loginAs(role) // a session of its own, to end
			}
			w := h.serve(r)
			if rank[role] < rank[o.role] {
				if w.Code != 403 {
					t.Errorf("%s (x-role %s) by %s: %d %s, want 403", o.key(), o.role, role, w.Code, w.Body)
				}
			} else if w.Code == 401 || w.Code == 403 || muxRefused(w) {
				t.Errorf("%s (x-role %s) by %s: %d %s, want it past the role check", o.key(), o.role, role, w.Code, w.Body)
			}
		}
	}
}

// loginAs logs in again as the staff member of role.
func (h *harness) loginAs(role string) *http.Cookie {
	switch role {
	case RoleAdmin:
		return h.login("office", adminPW)
	case RoleOperator:
		return h.login("desk", operatorPW)
	}
	return h.login("vendor", vendorPW)
}

// probes are harmless requests to each operation that needs a session:
// they change nothing (a missing target, a refused field) past the role
// check.
var probes = map[string]req{
	"POST /api/logout":                                {method: "POST", path: "/api/logout"},
	"GET /api/me":                                     {method: "GET", path: "/api/me"},
	"GET /api/dashboard":                              {method: "GET", path: "/api/dashboard"},
	"GET /api/extensions":                             {method: "GET", path: "/api/extensions"},
	"POST /api/extensions":                            {method: "POST", path: "/api/extensions", body: `{"number":"12a"}`},
	"PATCH /api/extensions/{number}":                  {method: "PATCH", path: "/api/extensions/999", body: `{"class":"internal"}`},
	"DELETE /api/extensions/{number}":                 {method: "DELETE", path: "/api/extensions/999"},
	"POST /api/extensions/{number}/unlock":            {method: "POST", path: "/api/extensions/999/unlock"},
	"GET /api/trunks":                                 {method: "GET", path: "/api/trunks"},
	"GET /api/forwards":                               {method: "GET", path: "/api/forwards"},
	"GET /api/groups":                                 {method: "GET", path: "/api/groups"},
	"GET /api/voicemail":                              {method: "GET", path: "/api/voicemail"},
	"PUT /api/extensions/{number}/voicemail":          {method: "PUT", path: "/api/extensions/999/voicemail"},
	"DELETE /api/extensions/{number}/voicemail":       {method: "DELETE", path: "/api/extensions/999/voicemail"},
	"PUT /api/extensions/{number}/forwards/{when}":    {method: "PUT", path: "/api/extensions/999/forwards/always", body: `{"to":"202"}`},
	"DELETE /api/extensions/{number}/forwards/{when}": {method: "DELETE", path: "/api/extensions/999/forwards/always"},
	"GET /api/policy":                                 {method: "GET", path: "/api/policy"},
	"POST /api/rates":                                 {method: "POST", path: "/api/rates", body: `{"prefix":"abc","per_minute":1}`},
	"PUT /api/profiles/{name}":                        {method: "PUT", path: "/api/profiles/default", body: `{"class":"galactic"}`},
	"DELETE /api/rates/{prefix}":                      {method: "DELETE", path: "/api/rates/+999"},
	"POST /api/policy/unfreeze":                       {method: "POST", path: "/api/policy/unfreeze"},
	"POST /api/check-number":                          {method: "POST", path: "/api/check-number", body: `{"from":"999","dialled":"0312345678"}`},
	"GET /api/bans":                                   {method: "GET", path: "/api/bans"},
	"DELETE /api/bans/{address}":                      {method: "DELETE", path: "/api/bans/203.0.113.250"},
	"GET /api/cdr":                                    {method: "GET", path: "/api/cdr"},
	"GET /api/cdr.csv":                                {method: "GET", path: "/api/cdr.csv"},
	"GET /api/audit":                                  {method: "GET", path: "/api/audit"},
	"GET /api/audit/verify":                           {method: "GET", path: "/api/audit/verify"},
	"GET /api/settings":                               {method: "GET", path: "/api/settings"},
	"PUT /api/settings":                               {method: "PUT", path: "/api/settings", body: `{}`},
	"GET /api/users":                                  {method: "GET", path: "/api/users"},
	"POST /api/users":                                 {method: "POST", path: "/api/users", body: `{"username":"x","password":"p","role":"root"}`},
	"DELETE /api/users/{username}":                    {method: "DELETE", path: "/api/users/nobody"},
	"POST /api/setup":                                 {method: "POST", path: "/api/setup", body: `{"token":"x","username":"u","password":"p","totp_secret":"s","code":"1"}`},
	"POST /api/login":                                 {method: "POST", path: "/api/login", body: `{"username":"nobody","password":"p"}`},
	"GET /api/totp/new":                               {method: "GET", path: "/api/totp/new?username=office"},
	"GET /api/openapi.json":                           {method: "GET", path: "/api/openapi.json"},
}

// TestOpenAPIProbes: every probe requests the documented operation it
// is listed under.
func TestOpenAPIProbes(t *testing.T) {
	d := loadDoc(t)
	for k, p := range probes {
		method, path, _ := strings.Cut(k, " ")
		if op := d.find(method, path); op == nil || op.key() != k {
			t.Errorf("probe %s: no such documented operation", k)
		}
		if got := d.find(p.method, strings.SplitN(p.path, "?", 2)[0]); got == nil || got.key() != k {
			t.Errorf("probe %s requests %s %s, another operation", k, p.method, p.path)
		}
	}
}

// row is one request of the conformance table, with the status wanted.
type row struct {
	name    string
	before  func(h *harness)
	r       req
	as      string // the role whose cookie goes with it; "" none
	want    int
	badBody bool // the body is outside the documented schema on purpose
}

// TestOpenAPIConformance sends a table of real requests, at least one per
// operation and one per documented status (but 500), and holds each to
// the document: the request's body and query are documented ones (or,
// for the rows meant to break it, are not), the status is documented, and
// the JSON answer is valid against its schema. Then every documented
// property of every request and response must have been seen.
func TestOpenAPIConformance(t *testing.T) {
	h := newHarness(t)
	h.cov = newCoverage()
	reqCov := newCoverage()
	ctx := context.Background()
	// Setup and login first, under the table's eye.
	sec := h.newSecret("office")
	h.freshStep("office")
	cookies := map[string]*http.Cookie{}
	run := func(t *testing.T, rw row) *httptest.ResponseRecorder {
		t.Helper()
		if rw.before != nil {
			rw.before(h)
		}
		if rw.as != "" {
			rw.r.cookie = cookies[rw.as]
		}
		probs := h.spec.checkRequest(rw.r.method, rw.r.path, rw.r.body, nil)
		if rw.badBody {
			if len(probs) == 0 {
				t.Errorf("%s: the body %s is meant to be outside the documented schema, and the validator passes it", rw.name, rw.r.body)
			}
		} else {
			for _, p := range probs {
				t.Errorf("%s: the request %s %s %s is not a documented one: %s", rw.name, rw.r.method, rw.r.path, rw.r.body, p)
			}
		}
		w := h.serve(rw.r)
		if w.Code != rw.want {
			t.Errorf("%s: %s %s: %d %s, want %d", rw.name, rw.r.method, rw.r.path, w.Code, w.Body, rw.want)
		}
		if !rw.badBody && w.Code < 300 {
			h.spec.checkRequest(rw.r.method, rw.r.path, rw.r.body, reqCov)
		}
		return w
	}
	setup := js(map[string]string{"token": h.token, "username": "office", "password": adminPW, "totp_secret": sec, "code": h.code(sec)})
	run(t, row{name: "setup, wrong token", r: req{method: "POST", path: "/api/setup", body: strings.Replace(setup, h.token, "nope", 1)}, want: 403})
	run(t, row{name: "setup, unknown field", r: req{method: "POST", path: "/api/setup", body: `{"token":"x","bogus":1}`}, want: 400, badBody: true})
	run(t, row{name: "setup", r: req{method: "POST", path: "/api/setup", body: setup}, want: 201})
	h.secrets["office"] = sec
	cookies[RoleAdmin] = h.login("office", adminPW)
	h.addUser(cookies[RoleAdmin], "desk", operatorPW, RoleOperator)
	h.addUser(cookies[RoleAdmin], "vendor", vendorPW, RoleMaintenance)
	w := run(t, row{name: "login, enrol asked", r: req{method: "POST", path: "/api/login", body: js(map[string]string{"username": "desk", "password": operatorPW})}, want: 401})
	if !strings.Contains(w.Body.String(), `"enrol":true`) {
		t.Errorf("first login without a second factor: %s, want enrol", w.Body)
	}
	dsec := h.newSecret("desk")
	h.freshStep("desk")
	run(t, row{name: "login, enrol with a bad secret", r: req{method: "POST", path: "/api/login", body: js(map[string]string{"username": "desk", "password": operatorPW, "totp_secret": "abc", "code": "123456"})}, want: 400})
	w = run(t, row{name: "login, enrol", r: req{method: "POST", path: "/api/login", body: js(map[string]string{"username": "desk", "password": operatorPW, "totp_secret": dsec, "code": h.code(dsec)})}, want: 200})
	h.secrets["desk"], cookies[RoleOperator] = dsec, sessionCookie(w)
	h.maint = true
	cookies[RoleMaintenance] = h.enrol("vendor", vendorPW)
	h.maint = false
	h.freshStep("vendor")
	run(t, row{name: "login, maintenance switched off", r: req{method: "POST", path: "/api/login", body: js(map[string]string{"username": "vendor", "password": vendorPW, "code": h.code(h.secrets["vendor"])})}, want: 403})
	h.maint = true
	h.freshStep("office")
	run(t, row{name: "login", r: req{method: "POST", path: "/api/login", body: js(map[string]string{"username": "office", "password": adminPW, "code": h.code(sec)})}, want: 200})
	for i := range 3 {
		run(t, row{name: fmt.Sprintf("login, wrong password %d", i), r: req{method: "POST", path: "/api/login", body: js(map[string]string{"username": "desk", "password": "wrong-wrong-wrong-1", "code": "123456"})}, want: 401})
	}
	run(t, row{name: "login, locked", r: req{method: "POST", path: "/api/login", body: js(map[string]string{"username": "desk", "password": operatorPW, "code": "123456"})}, want: 429})
	run(t, row{name: "login, not JSON", r: req{method: "POST", path: "/api/login", body: `{"username":`}, want: 400, badBody: true})

	// The office's data, so that every property has something to show.
	h.st.AddExtension(ctx, store.Extension{Number: "202", Name: "Sales", Realm: "r", HA1MD5: "a", HA1SHA256: "b", Digest: "md5", Countries: "US", Networks: "192.0.2.0/24"})
	h.st.Suspend(ctx, "202", "intl-per-hour", h.now)
	h.reg["202"] = true
	h.st.PutBan(ctx, store.Ban{Address: "203.0.113.9", Until: h.now.Add(time.Hour), Reason: "auth-failures", Offences: 2, Created: h.now, By: "pbx"})
	h.st.AddTrunk(ctx, store.Trunk{Name: "carrier", Peer: "198.51.100.1:5060", Transport: "udp", Username: "acct", PasswordSealed: []byte("sealed"), Register: true, CallerID: "0312340000"})
	h.st.SetTrunkState(ctx, "carrier", "failed", "403 from the carrier", time.Time{})
	h.st.AddDID(ctx, store.DID{Number: "0312340000", Extension: "202"})
	id, _ := h.st.AddAlert(ctx, store.Alert{At: h.now, Kind: "suspended", Subject: "extension 202", Detail: "intl-per-hour"})
	h.st.AlertDelivered(ctx, id, h.now)
	id, _ = h.st.AddAlert(ctx, store.Alert{At: h.now, Kind: "frozen", Subject: "pbx", Detail: "daily spend"})
	h.st.AlertFailed(ctx, id, "smtp: connection refused")
	h.st.FreezeIntl(ctx, "the PBX spent its daily limit")
	writeCDRs(t, h, sampleCDRs(h.now))
	auditLog(t, h, false)

	rows := []row{
		{name: "me", r: req{method: "GET", path: "/api/me"}, as: RoleMaintenance, want: 200},
		{name: "openapi", r: req{method: "GET", path: "/api/openapi.json"}, want: 200},
		{name: "totp new", r: req{method: "GET", path: "/api/totp/new?username=someone"}, want: 200},
		{name: "totp new, bad name", r: req{method: "GET", path: "/api/totp/new?username=NO"}, want: 400},
		{name: "dashboard", r: req{method: "GET", path: "/api/dashboard"}, as: RoleMaintenance, want: 200},
		{name: "extensions", r: req{method: "GET", path: "/api/extensions"}, as: RoleOperator, want: 200},
		{name: "add extension", r: req{method: "POST", path: "/api/extensions", body: `{"number":"201","name":"Reception","digest":"both"}`}, as: RoleAdmin, want: 201},
		{name: "add extension, exists", r: req{method: "POST", path: "/api/extensions", body: `{"number":"201"}`}, as: RoleAdmin, want: 409},
		{name: "add extension, bad number", r: req{method: "POST", path: "/api/extensions", body: `{"number":"12a"}`}, as: RoleAdmin, want: 400},
		{name: "add extension, wrong type", r: req{method: "POST", path: "/api/extensions", body: `{"number":201}`}, as: RoleAdmin, want: 400, badBody: true},
		{name: "edit extension", r: req{method: "PATCH", path: "/api/extensions/201", body: `{"class":"international","countries":"US,KR","profile":"default","networks":"192.0.2.0/24"}`}, as: RoleAdmin, want: 200},
		{name: "edit extension, bad class", r: req{method: "PATCH", path: "/api/extensions/201", body: `{"class":"galactic"}`}, as: RoleAdmin, want: 400},
		{name: "edit extension, missing", r: req{method: "PATCH", path: "/api/extensions/999", body: `{"class":"internal"}`}, as: RoleAdmin, want: 404},
		{name: "unlock", r: req{method: "POST", path: "/api/extensions/202/unlock"}, as: RoleOperator, want: 200},
		{name: "unlock, missing", r: req{method: "POST", path: "/api/extensions/999/unlock"}, as: RoleOperator, want: 404},
		{name: "forward, refused by the gate", r: req{method: "PUT", path: "/api/extensions/201/forwards/always", body: `{"to":"001023276123456"}`}, as: RoleAdmin, want: 400},
		{name: "forward, no such extension", r: req{method: "PUT", path: "/api/extensions/999/forwards/busy", body: `{"to":"202"}`}, as: RoleAdmin, want: 404},
		{name: "forward", r: req{method: "PUT", path: "/api/extensions/201/forwards/noanswer", body: `{"to":"202"}`}, as: RoleAdmin, want: 200},
		{name: "forwards", r: req{method: "GET", path: "/api/forwards"}, as: RoleMaintenance, want: 200},
		{name: "clear forward, bad condition", r: req{method: "DELETE", path: "/api/extensions/201/forwards/sometimes"}, as: RoleAdmin, want: 400},
		{name: "clear forward", r: req{method: "DELETE", path: "/api/extensions/201/forwards/noanswer"}, as: RoleAdmin, want: 200},
		{name: "clear forward, none", r: req{method: "DELETE", path: "/api/extensions/201/forwards/noanswer"}, as: RoleAdmin, want: 404},
		{name: "groups", before: func(h *harness) {
			for _, g := range []store.Group{
				{Number: "601", Strategy: store.Hunt, RingSecs: 20, Ring: 20 * time.Second, Members: []string{"201"}},
				{Number: "600", Name: "Sales", Strategy: store.RingAll, RingSecs: 15, Ring: 15 * time.Second, Overflow: "601", Members: []string{"201"}},
			} {
				if err := h.st.AddGroup(ctx, g); err != nil {
					t.Fatal(err)
				}
			}
		}, r: req{method: "GET", path: "/api/groups"}, as: RoleMaintenance, want: 200},
		{name: "mailbox, no such extension", r: req{method: "PUT", path: "/api/extensions/999/voicemail"}, as: RoleAdmin, want: 404},
		{name: "mailbox", r: req{method: "PUT", path: "/api/extensions/201/voicemail"}, as: RoleAdmin, want: 200},
		{name: "mailboxes", before: func(h *harness) {
			// Wrong PINs have locked it: the lock shows, the PIN never does.
			if err := h.st.MailboxPIN(ctx, "201", false, h.now.Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
		}, r: req{method: "GET", path: "/api/voicemail"}, as: RoleMaintenance, want: 200},
		{name: "remove mailbox", r: req{method: "DELETE", path: "/api/extensions/201/voicemail"}, as: RoleAdmin, want: 200},
		{name: "remove mailbox, none", r: req{method: "DELETE", path: "/api/extensions/201/voicemail"}, as: RoleAdmin, want: 404},
		{name: "trunks", r: req{method: "GET", path: "/api/trunks"}, as: RoleMaintenance, want: 200},
		{name: "policy", r: req{method: "GET", path: "/api/policy"}, as: RoleMaintenance, want: 200},
		{name: "set rate", r: req{method: "POST", path: "/api/rates", body: `{"prefix":"+99999","per_minute":30,"note":"UK"}`}, as: RoleAdmin, want: 200},
		{name: "new profile", r: req{method: "PUT", path: "/api/profiles/night", body: `{"class":"international","countries":"US","hours":"mon-fri 08:00-20:00","max_duration":"30m","intl_per_hour":3}`}, as: RoleAdmin, want: 201},
		{name: "edit profile", r: req{method: "PUT", path: "/api/profiles/night", body: `{"daily_spend":5000,"max_calls":4,"same_prefix":3,"distinct_per_hour":5,"intl_per_minute":2}`}, as: RoleAdmin, want: 200},
		{name: "profile, bad hours", r: req{method: "PUT", path: "/api/profiles/night", body: `{"hours":"whenever"}`}, as: RoleAdmin, want: 400},
		{name: "set rate, bad prefix", r: req{method: "POST", path: "/api/rates", body: `{"prefix":"abc","per_minute":30}`}, as: RoleAdmin, want: 400},
		{name: "delete rate", r: req{method: "DELETE", path: "/api/rates/+99999"}, as: RoleAdmin, want: 200},
		{name: "delete rate, missing", r: req{method: "DELETE", path: "/api/rates/+99999"}, as: RoleAdmin, want: 404},
		{name: "unfreeze", r: req{method: "POST", path: "/api/policy/unfreeze"}, as: RoleOperator, want: 200},
		{name: "check, denied", r: req{method: "POST", path: "/api/check-number", body: `{"from":"202","dialled":"+23276123456"}`}, as: RoleMaintenance, want: 200},
		{name: "check, allowed withheld", r: req{method: "POST", path: "/api/check-number", body: `{"from":"201","dialled":"01840312345678"}`}, as: RoleMaintenance, want: 200},
		{name: "check, no dialled", r: req{method: "POST", path: "/api/check-number", body: `{"from":"201","dialled":""}`}, as: RoleMaintenance, want: 400},
		{name: "check, no such extension", r: req{method: "POST", path: "/api/check-number", body: `{"from":"999","dialled":"0312345678"}`}, as: RoleMaintenance, want: 400},
		{name: "bans", r: req{method: "GET", path: "/api/bans"}, as: RoleMaintenance, want: 200},
		{name: "unban", r: req{method: "DELETE", path: "/api/bans/203.0.113.9"}, as: RoleOperator, want: 200},
		{name: "unban, missing", r: req{method: "DELETE", path: "/api/bans/203.0.113.77"}, as: RoleOperator, want: 404},
		{name: "unban, not an address", r: req{method: "DELETE", path: "/api/bans/nope"}, as: RoleOperator, want: 400},
		{name: "cdr", r: req{method: "GET", path: "/api/cdr?q=SL&since=24h&limit=10&direction=outbound"}, as: RoleMaintenance, want: 200},
		{name: "cdr, all", r: req{method: "GET", path: "/api/cdr"}, as: RoleMaintenance, want: 200},
		{name: "cdr, bad since", r: req{method: "GET", path: "/api/cdr?since=yesterday"}, as: RoleMaintenance, want: 400},
		{name: "cdr csv", r: req{method: "GET", path: "/api/cdr.csv?q=20&since=48h&limit=5&direction=internal"}, as: RoleMaintenance, want: 200},
		{name: "cdr csv, bad limit", r: req{method: "GET", path: "/api/cdr.csv?limit=0"}, as: RoleMaintenance, want: 400},
		{name: "audit", r: req{method: "GET", path: "/api/audit?type=config-change&source=console%3Aoffice"}, as: RoleMaintenance, want: 200},
		{name: "audit, all", r: req{method: "GET", path: "/api/audit"}, as: RoleMaintenance, want: 200},
		{name: "verify", r: req{method: "GET", path: "/api/audit/verify"}, as: RoleMaintenance, want: 200},
		{name: "verify, tampered", before: func(h *harness) { auditLog(t, h, true) }, r: req{method: "GET", path: "/api/audit/verify"}, as: RoleMaintenance, want: 200},
		{name: "settings", r: req{method: "GET", path: "/api/settings"}, as: RoleMaintenance, want: 200},
		{name: "set settings", r: req{method: "PUT", path: "/api/settings", body: `{"maintenance":true}`}, as: RoleAdmin, want: 200},
		{name: "set settings, missing", r: req{method: "PUT", path: "/api/settings", body: `{}`}, as: RoleAdmin, want: 400, badBody: true},
		{name: "users", r: req{method: "GET", path: "/api/users"}, as: RoleAdmin, want: 200},
		{name: "add user", r: req{method: "POST", path: "/api/users", body: `{"username":"night-shift","password":"slow-river-under-moon-8","role":"operator"}`}, as: RoleAdmin, want: 201},
		{name: "add user, taken", r: req{method: "POST", path: "/api/users", body: `{"username":"night-shift","password":"slow-river-under-moon-8","role":"operator"}`}, as: RoleAdmin, want: 409},
		{name: "add user, bad role", r: req{method: "POST", path: "/api/users", body: `{"username":"x-ray","password":"slow-river-under-moon-8","role":"root"}`}, as: RoleAdmin, want: 400, badBody: true},
		{name: "add user, weak password", r: req{method: "POST", path: "/api/users", body: `{"username":"x-ray","password":"password","role":"operator"}`}, as: RoleAdmin, want: 400},
		{name: "add user, bad role type", r: req{method: "POST", path: "/api/users", body: `{"username":"x-ray","password":"slow-river-under-moon-8","role":2}`}, as: RoleAdmin, want: 400, badBody: true},
		{name: "delete user", r: req{method: "DELETE", path: "/api/users/night-shift"}, as: RoleAdmin, want: 200},
		{name: "delete user, missing", r: req{method: "DELETE", path: "/api/users/night-shift"}, as: RoleAdmin, want: 404},
		{name: "delete user, self", r: req{method: "DELETE", path: "/api/users/office"}, as: RoleAdmin, want: 400},
		{name: "delete extension", r: req{method: "DELETE", path: "/api/extensions/201"}, as: RoleAdmin, want: 200},
		{name: "delete extension, missing", r: req{method: "DELETE", path: "/api/extensions/201"}, as: RoleAdmin, want: 404},
		{name: "logout", r: req{method: "POST", path: "/api/logout"}, as: RoleOperator, want: 200},
	}
	for _, rw := range rows {
		run(t, rw)
	}
	// 401 and 403 for every operation: no session, a peer outside, and a
	// cross-origin change.
	for _, op := range h.spec.ops {
		p, ok := probes[op.key()]
		if !ok {
			t.Errorf("%s: no probe", op.key())
			continue
		}
		if op.authed {
			run(t, row{name: "no session", r: p, want: 401, badBody: len(h.spec.checkRequest(p.method, p.path, p.body, nil)) > 0})
		}
		outside := p
		outside.peer, outside.cookie = "198.51.100.9:40000", cookies[RoleAdmin]
		run(t, row{name: "outside peer", r: outside, want: 403, badBody: len(h.spec.checkRequest(p.method, p.path, p.body, nil)) > 0})
	}

	// Every operation, every documented status but 500, every property.
	for _, op := range h.spec.ops {
		responses, _ := op.obj["responses"].(map[string]any)
		for code := range responses {
			n, _ := strconv.Atoi(code)
			if n != 500 && !h.cov.statuses[op.key()][n] {
				t.Errorf("%s: status %d is documented and no request of the table got it", op.key(), n)
			}
		}
	}
	for loc := range h.spec.responseProps() {
		if !h.cov.props[loc] {
			t.Errorf("response property %s is documented and no response of the table had it", loc)
		}
	}
	for loc := range h.spec.requestProps() {
		if !reqCov.props[loc] {
			t.Errorf("request property %s is documented and no successful request of the table sent it", loc)
		}
	}
}

// TestOpenAPICheckerCatches breaks the document in the ways a stale one
// would be broken and asserts the checks above notice each.
func TestOpenAPICheckerCatches(t *testing.T) {
	h := newHarness(t)
	admin := h.setupAdmin()
	good := h.spec
	reg := registeredRoutes(t)
	if diff := compareRoutes(good, reg); len(diff) > 0 {
		t.Fatalf("the document and the routes differ already: %v", diff)
	}
	// An operation removed from the document.
	root := good.clone(t)
	delete(root["paths"].(map[string]any)["/api/trunks"].(map[string]any), "get")
	if diff := compareRoutes(mustParseDoc(t, root), reg); len(diff) != 1 || !strings.Contains(diff[0], "GET /api/trunks") {
		t.Errorf("GET /api/trunks removed from the document: differences %v, want it named", diff)
	}
	// A route the handlers do not have.
	fake := map[string]bool{"PATCH /api/trunks": true}
	for r := range reg {
		fake[r] = true
	}
	if diff := compareRoutes(good, fake); len(diff) != 1 {
		t.Errorf("an undocumented route: differences %v", diff)
	}
	w := h.do("POST", "/api/extensions", `{"number":"201"}`, admin)
	if w.Code != 201 {
		t.Fatalf("add extension: %d %s", w.Code, w.Body)
	}
	check := func(d *apiDoc, method, path string, w *httptest.ResponseRecorder) []string {
		return d.checkResponse(method, path, w.Code, w.Header(), w.Body.Bytes(), nil)
	}
	if p := check(good, "POST", "/api/extensions", w); len(p) > 0 {
		t.Fatalf("the real response does not pass: %v", p)
	}
	// A property removed from a response schema.
	root = good.clone(t)
	delete(root["components"].(map[string]any)["schemas"].(map[string]any)["NewExtension"].(map[string]any)["properties"].(map[string]any), "qr_svg")
	if p := check(mustParseDoc(t, root), "POST", "/api/extensions", w); len(p) == 0 {
		t.Error("qr_svg removed from NewExtension: the response still passes")
	}
	// A property the handler does not send, required.
	root = good.clone(t)
	ne := root["components"].(map[string]any)["schemas"].(map[string]any)["NewExtension"].(map[string]any)
	ne["properties"].(map[string]any)["pin"] = map[string]any{"type": "string"}
	ne["required"] = append(ne["required"].([]any), "pin")
	if p := check(mustParseDoc(t, root), "POST", "/api/extensions", w); len(p) == 0 {
		t.Error("a required property the handler does not send: the response still passes")
	}
	// A wrong type.
	root = good.clone(t)
	root["components"].(map[string]any)["schemas"].(map[string]any)["NewExtension"].(map[string]any)["properties"].(map[string]any)["password"] = map[string]any{"type": "integer"}
	if p := check(mustParseDoc(t, root), "POST", "/api/extensions", w); len(p) == 0 {
		t.Error("password documented as an integer: the response still passes")
	}
	// A status removed.
	root = good.clone(t)
	delete(root["paths"].(map[string]any)["/api/extensions"].(map[string]any)["post"].(map[string]any)["responses"].(map[string]any), "201")
	if p := check(mustParseDoc(t, root), "POST", "/api/extensions", w); len(p) == 0 {
		t.Error("201 removed from POST /api/extensions: the response still passes")
	}
	// A request property removed: the body the tests send no longer passes.
	root = good.clone(t)
	delete(root["components"].(map[string]any)["schemas"].(map[string]any)["ExtensionInput"].(map[string]any)["properties"].(map[string]any), "name")
	if p := mustParseDoc(t, root).checkRequest("POST", "/api/extensions", `{"number":"201","name":"x"}`, nil); len(p) == 0 {
		t.Error("name removed from ExtensionInput: a request with a name still passes")
	}
	if p := good.checkRequest("POST", "/api/extensions", `{"number":"201","name":"x"}`, nil); len(p) > 0 {
		t.Errorf("a documented request fails: %v", p)
	}
	if p := good.checkRequest("GET", "/api/cdr?bogus=1", "", nil); len(p) == 0 {
		t.Error("an undocumented query parameter passes")
	}
	// A response property the coverage check must ask for.
	root = good.clone(t)
	root["components"].(map[string]any)["schemas"].(map[string]any)["NewExtension"].(map[string]any)["properties"].(map[string]any)["pin"] = map[string]any{"type": "string"}
	if !mustParseDoc(t, root).responseProps()["#/components/schemas/NewExtension/properties/pin"] {
		t.Error("responseProps does not list a documented property")
	}
}
