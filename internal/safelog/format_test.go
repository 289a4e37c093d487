package safelog

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var pid = etf.Pid{Node: "a@host", ID: 1042, Creation: 7}

type point struct {
	X, Y   int
	hidden string
}

type selfRef struct {
	Name string
	Next *selfRef
}

func TestFormatTerms(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   any
		want string
	}{
		{"nil", nil, "nil"},
		{"atom", etf.Atom("ok"), "ok"},
		{"node atom", etf.Atom("a@host"), "a@host"},
		{"quoted atom", etf.Atom("Elixir.Nx.Serving"), "'Elixir.Nx.Serving'"},
		{"atom with a newline", etf.Atom("a\nb"), `'a\nb'`},
		{"empty atom", etf.Atom(""), "''"},
		{"string", "hi \"you\"\n", `"hi \"you\"\n"`},
		{"invalid utf8", "a\xffb", `"a\xffb"`},
		{"unicode kept", "héllo", `"héllo"`},
		{"line separator escaped", "a\u2028b", `"a\u2028b"`},
		{"etf.String", etf.String("bin"), `<<"bin">>`},
		{"text binary", []byte("hello"), `<<"hello">>`},
		{"bytes binary", []byte{1, 2, 255}, "<<1,2,255>>"},
		{"empty binary", []byte{}, `<<"">>`},
		{"ints", etf.Tuple{1, int64(-2), uint8(3), uint64(4)}, "{1,-2,3,4}"},
		{"floats", etf.List{1.5, float32(0.25)}, "[1.5,0.25]"},
		{"bools", etf.Tuple{true, false}, "{true,false}"},
		{"pid", pid, "<a@host.1042.7>"},
		{"ref", etf.Ref{Node: "a@host", ID: [5]uint32{1, 2, 3}}, "#Ref<a@host.1.2.3>"},
		{"alias", etf.Alias{Node: "a@host", ID: [5]uint32{4, 5, 6}}, "#Alias<a@host.4.5.6>"},
		{"port", etf.Port{Node: "a@host", ID: 9}, "#Port<a@host.9>"},
		{"empty tuple", etf.Tuple{}, "{}"},
		{"empty list", etf.List{}, "[]"},
		{"nested", etf.Tuple{etf.Atom("join"), pid, etf.Atom("g"), etf.List{pid}}, "{join,<a@host.1042.7>,g,[<a@host.1042.7>]}"},
		{"improper", etf.ListImproper{1, 2, etf.Atom("t")}, "[1,2|t]"},
		{"map", etf.Map{etf.Atom("k"): 1}, "#{k => 1}"},
		{"error", errors.New("boom\nagain"), `boom\nagain`},
		{"go struct", point{1, 2, "x"}, `safelog.point{X: 1,Y: 2,hidden: "x"}`},
		{"pointer", &point{X: 1}, `&safelog.point{X: 1,Y: 0,hidden: ""}`},
		{"go slice", []string{"a", "b"}, `["a","b"]`},
		{"go map", map[string]int{"k": 1}, `#{"k" => 1}`},
		{"go array", [2]int{1, 2}, "[1,2]"},
		{"func", func() {}, "<func>"},
		{"message down", gen.MessageDown{Pid: pid, Reason: "noproc"},
			`gen.MessageDown{Ref: #Ref<''.0.0.0>,ProcessID: gen.ProcessID{Name: "",Node: ""},Pid: <a@host.1042.7>,Reason: "noproc"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, Format(tc.in))
		})
	}
}

// A list nested a million deep (what crashed a node when formatted with
// %v) prints DefaultMaxDepth levels.
func TestFormatDeepList(t *testing.T) {
	deep := deepList(1_000_000)
	want := strings.Repeat("[", DefaultMaxDepth+1) + "…" + strings.Repeat("]", DefaultMaxDepth+1)
	assert.Equal(t, want, Format(deep))
	// The cost does not depend on the depth: the same allocations for a
	// list 10 deep as for one a million deep.
	shallow := deepList(10)
	assert.Equal(t, testing.AllocsPerRun(10, func() { Format(shallow) }),
		testing.AllocsPerRun(10, func() { Format(deep) }))
}

func deepList(n int) etf.Term {
	var t etf.Term = etf.List{}
	for range n {
		t = etf.List{t}
	}
	return t
}

// Go values nested a million deep, and a pointer cycle, end at MaxDepth.
func TestFormatDeepGoValues(t *testing.T) {
	var deep any = []any{}
	for range 1_000_000 {
		deep = []any{deep}
	}
	want := strings.Repeat("[", DefaultMaxDepth+1) + "…" + strings.Repeat("]", DefaultMaxDepth+1)
	assert.Equal(t, want, Format(deep))

	cycle := &selfRef{Name: "a"}
	cycle.Next = cycle
	got := Format(cycle)
	assert.Equal(t, DefaultMaxDepth/2, strings.Count(got, `Name: "a"`), got)
	assert.True(t, strings.HasSuffix(got, "&…}}}}"), got)
}

// A 100 MB binary prints its first DefaultMaxString bytes and its size.
func TestFormatHugeBinary(t *testing.T) {
	const size = 100 << 20
	b := make([]byte, size)
	b[0] = 1
	want := "<<1" + strings.Repeat(",0", DefaultMaxString-1) + ">>…(+" + fmt.Sprint(size-DefaultMaxString) + " bytes)"
	assert.Equal(t, want, Format(b))

	text := strings.Repeat("x", size)
	assert.Equal(t, `"`+text[:DefaultMaxString]+`"…(+`+fmt.Sprint(size-DefaultMaxString)+" bytes)", Format(text))
	assert.Equal(t, `<<"`+text[:DefaultMaxString]+`">>…(+`+fmt.Sprint(size-DefaultMaxString)+" bytes)", Format(etf.String(text)))
	assert.Equal(t, text[:DefaultMaxString]+"…(+"+fmt.Sprint(size-DefaultMaxString)+" bytes)", Format(etf.Atom(text)))
}

// Long containers print MaxItems elements and count the rest.
func TestFormatLongContainers(t *testing.T) {
	long := make(etf.List, 1_000_000)
	for i := range long {
		long[i] = i
	}
	assert.Equal(t, "[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,…+999984]", Format(long))
	assert.Equal(t, "{0,1,2,…+999997}", Limits{MaxItems: 3}.Format(etf.Tuple(long)))

	m := make(etf.Map, 1000)
	for i := range 1000 {
		m[i] = i
	}
	got := Limits{MaxItems: 2}.Format(m)
	assert.True(t, strings.HasPrefix(got, "#{"), got)
	assert.True(t, strings.HasSuffix(got, ",…+998}"), got)
	assert.Equal(t, 2, strings.Count(got, "=>"), got)

	improper := etf.ListImproper(append(long[:100:100], etf.Atom("tail")))
	assert.Equal(t, "[0,1,…+98|tail]", Limits{MaxItems: 2}.Format(improper))
}

// Whatever the term, the output fits MaxBytes (… included) and is valid
// UTF-8.
func TestFormatFitsMaxBytes(t *testing.T) {
	wide := make(etf.Tuple, 100)
	for i := range wide {
		wide[i] = strings.Repeat("é", 100)
	}
	for _, max := range []int{16, 17, 18, 100, 512, 4096} {
		got := Limits{MaxBytes: max, MaxItems: 100}.Format(wide)
		assert.LessOrEqual(t, len(got), max)
		assert.True(t, utf8.ValidString(got))
		assert.True(t, strings.HasSuffix(got, "…"), got)
	}
	assert.Len(t, Limits{MaxBytes: 1}.Format(strings.Repeat("a", 100)), 16, "MaxBytes under 16 is raised to 16")
	assert.Equal(t, "{1,2}", Limits{MaxBytes: 16}.Format(etf.Tuple{1, 2}), "what fits is not cut")
}

// Append appends to what dst holds and counts MaxBytes from there.
func TestAppendKeepsPrefix(t *testing.T) {
	got := Limits{MaxBytes: 16}.Append([]byte("msg="), strings.Repeat("a", 100))
	assert.Equal(t, `msg="aaaaaaaaaaaa…`, string(got))
}

type panicky struct{}

func (*panicky) Error() string { panic("no") }

// A panic in an Error method is not the caller's: the line says so.
func TestFormatRecoversPanics(t *testing.T) {
	var e *panicky
	assert.Equal(t, "{1,<panic while formatting>", Format(etf.Tuple{1, error(e)}))
}

func TestValueFormatsLazilyForEveryVerb(t *testing.T) {
	v := T(etf.Tuple{etf.Atom("a"), []byte("b")})
	for _, verb := range []string{"%v", "%s", "%+v", "%#v", "%q", "%d"} {
		assert.Equal(t, `{a,<<"b">>}`, fmt.Sprintf(verb, v), verb)
	}
	assert.Equal(t, `{a,<<"b">>}`, v.String())
	assert.Equal(t, slog.StringValue(`{a,<<"b">>}`), v.LogValue())
	assert.Equal(t, "[1,…+2]", Limits{MaxItems: 1}.T(etf.List{1, 2, 3}).String())
}

func TestZeroLimitsAreDefaults(t *testing.T) {
	require.Equal(t, Limits{MaxBytes: DefaultMaxBytes, MaxDepth: DefaultMaxDepth, MaxItems: DefaultMaxItems, MaxString: DefaultMaxString},
		Limits{}.withDefaults())
}
