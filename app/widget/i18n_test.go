package widget

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// useLanguage makes lang the language of the texts for the test, with the
// storefront's messages custom, and English again after it.
func useLanguage(t testing.TB, lang string, custom map[string]string) {
	t.Helper()
	setLanguage(language{tag: lang, custom: custom}, "")
	t.Cleanup(func() { setLanguage(language{tag: defaultLanguage}, "") })
}

// TestCatalogsComplete: every catalog has every message of the English one,
// each plural message in every form of its language, with the placeholders
// of the English text, and nothing else.
func TestCatalogsComplete(t *testing.T) {
	for key := range catalogEN {
		if id, form, plural := strings.Cut(key, pluralSep); plural && form != string(formOne) && form != string(formOther) {
			t.Errorf("en: %s has the form %q; English has one and other", id, form)
		}
	}
	for lang, cat := range catalogs {
		for key := range catalogEN {
			id, _, plural := strings.Cut(key, pluralSep)
			if !plural {
				if _, ok := cat[id]; !ok {
					t.Errorf("%s: no message %s", lang, id)
				}
				continue
			}
			for _, f := range pluralForms(lang) {
				if _, ok := cat[id+pluralSep+string(f)]; !ok {
					t.Errorf("%s: no form %s of %s", lang, f, id)
				}
			}
		}
		for key, text := range cat {
			// The checks a storefront's message gets: a known id,
			// a form of the language, the English placeholders.
			if err := checkMessage(lang, key, text); err != nil {
				t.Errorf("%s: %v", lang, err)
			}
		}
	}
}

// idUse matches a message id in the widget's code: tr("id", trn("id",
// waiting("id" (statusText), or a constant's = "id".
var idUse = regexp.MustCompile(`\b(?:trn?|waiting)\("([^"]+)"|^\s+\w+\s+= "([a-z_]+\.[a-z_.]+)"$`)

// TestIDsInCodeAreInTheCatalog: every id the code asks for is in the
// English catalog, and every message of it is used.
func TestIDsInCodeAreInTheCatalog(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || strings.HasPrefix(f, "catalog_") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			for _, m := range idUse.FindAllStringSubmatch(line, -1) {
				id := m[1] + m[2]
				used[id] = true
				_, plain := catalogEN[id]
				_, plural := catalogEN[id+pluralSep+string(formOther)]
				if !plain && !plural {
					t.Errorf("%s: %q is not in the English catalog", f, id)
				}
			}
		}
	}
	// Ids built at run time.
	for _, r := range reasons {
		used[r] = true
	}
	var unused []string
	for key := range catalogEN {
		if id, _, _ := strings.Cut(key, pluralSep); !used[id] {
			unused = append(unused, key)
		}
	}
	sort.Strings(unused)
	if len(unused) > 0 {
		t.Errorf("messages no code uses: %v", unused)
	}
}

func TestPluralRule(t *testing.T) {
	tests := []struct {
		lang string
		n    int
		want pluralForm
	}{
		{"en", 0, formOther}, {"en", 1, formOne}, {"en", 2, formOther}, {"en", 21, formOther},
		{"de", 1, formOne}, {"de", 5, formOther},
		{"fr", 1, formOne}, {"fr", 3, formOther}, // no rule: like English
		{"ar", 0, formZero}, {"ar", 1, formOne}, {"ar", 2, formTwo},
		{"ar", 3, formFew}, {"ar", 10, formFew}, {"ar", 11, formMany}, {"ar", 26, formMany}, {"ar", 99, formMany},
		{"ar", 100, formOther}, {"ar", 101, formOther}, {"ar", 102, formOther},
		{"ar", 103, formFew}, {"ar", 110, formFew}, {"ar", 111, formMany}, {"ar", 199, formMany},
		{"ar", 200, formOther}, {"ar", 1000, formOther}, {"ar", 1003, formFew},
	}
	for _, tt := range tests {
		if got := pluralRule(tt.lang, tt.n); got != tt.want {
			t.Errorf("pluralRule(%q, %d) = %s, want %s", tt.lang, tt.n, got, tt.want)
		}
	}
}

func TestPlurals(t *testing.T) {
	tests := []struct {
		lang string
		n    int
		want string
	}{
		{"en", 1, "1 item"},
		{"en", 3, "3 items"},
		{"de", 1, "1 Artikel"},
		{"de", 3, "3 Artikel"},
		{"ar", 0, "لا عناصر"},
		{"ar", 1, "عنصر واحد"},
		{"ar", 2, "عنصران"},
		{"ar", 3, "3 عناصر"},
		{"ar", 11, "11 عنصرًا"},
		{"ar", 100, "100 عنصر"},
	}
	for _, tt := range tests {
		t.Run(tt.lang+"/"+tt.want, func(t *testing.T) {
			useLanguage(t, tt.lang, nil)
			if got := trn("cart.items", tt.n); got != tt.want {
				t.Errorf("trn(cart.items, %d) = %q, want %q", tt.n, got, tt.want)
			}
		})
	}
	t.Run("a language without the message", func(t *testing.T) {
		// A storefront's language with only some messages: the
		// others are English, in English's forms.
		useLanguage(t, "fr", map[string]string{"panel.title": "Votre panier"})
		if got, want := tr("panel.title"), "Votre panier"; got != want {
			t.Errorf("tr(panel.title) = %q, want %q", got, want)
		}
		if got, want := trn("cart.items", 3), "3 items"; got != want {
			t.Errorf("trn(cart.items, 3) = %q, want %q", got, want)
		}
	})
}

func TestFill(t *testing.T) {
	tests := []struct {
		s    string
		args []any
		want string
	}{
		{"Remove {name} from cart", []any{"name", "Mug"}, "Remove Mug from cart"},
		{"{count} × {name}", []any{"count", 2, "name", "Tee"}, "2 × Tee"},
		{"{name} {name}", []any{"name", "x"}, "x x"},
		{"Keep {other}", []any{"name", "x"}, "Keep {other}"},
		{"no braces", []any{"name", "x"}, "no braces"},
		{"a {name} with {braces}", []any{"name", "{braces}"}, "a {braces} with {braces}"}, // one pass
	}
	for _, tt := range tests {
		if got := fill(tt.s, tt.args); got != tt.want {
			t.Errorf("fill(%q, %v) = %q, want %q", tt.s, tt.args, got, tt.want)
		}
	}
}

func TestChooseLanguage(t *testing.T) {
	fr := map[string]map[string]string{"fr": {"panel.title": "Votre panier"}}
	tests := []struct {
		name    string
		locale  string
		browser []string
		custom  map[string]map[string]string
		want    string
	}{
		{"nothing", "", nil, nil, "en"},
		{"data-locale", "de", []string{"en-US"}, nil, "de"},
		{"data-locale with a region", "de-CH", nil, nil, "de"},
		{"data-locale upper case", "AR-EG", nil, nil, "ar"},
		{"data-locale without texts", "fr-FR", []string{"de"}, nil, "en"},
		{"data-locale with the storefront's texts", "fr-FR", nil, fr, "fr"},
		{"the browser's", "", []string{"de-AT", "en"}, nil, "de"},
		{"the browser's first with texts", "", []string{"fr-FR", "ar-SA", "de"}, nil, "ar"},
		{"the browser's none", "", []string{"fr", "it"}, nil, "en"},
	}
	for _, tt := range tests {
		if got := chooseLanguage(tt.locale, tt.browser, tt.custom); got != tt.want {
			t.Errorf("%s: chooseLanguage(%q, %q) = %q, want %q", tt.name, tt.locale, tt.browser, got, tt.want)
		}
	}
}

func TestCheckMessages(t *testing.T) {
	tests := []struct {
		name   string
		lang   string
		msgs   map[string]string
		badID  string // the id refused, "" for none
		reason string // in the refusal
	}{
		{"overrides", "de", map[string]string{"panel.title": " Ihr Korb ", "line.remove.label": "{name} raus"}, "", ""},
		{"a plural form", "ar", map[string]string{"cart.items#few": "{count} قطع"}, "", ""},
		{"count left out of a form", "en", map[string]string{"cart.items#one": "one item"}, "", ""},
		{"a new language", "fr", map[string]string{"cart.items#one": "{count} article", "panel.title": "Votre panier"}, "", ""},
		{"unknown id", "de", map[string]string{"panel.title": "Korb", "panel.titel": "Korb"}, "panel.titel", "unknown message id"},
		{"placeholder missing", "de", map[string]string{"line.remove.label": "Entfernen"}, "line.remove.label", "placeholders none, want {name}"},
		{"placeholder added", "en", map[string]string{"panel.title": "{name}'s cart"}, "panel.title", "placeholders {name}, want none"},
		{"placeholder renamed", "en", map[string]string{"choice.total": "Total {sum}"}, "choice.total", "want {amount}"},
		{"a form the language lacks", "de", map[string]string{"cart.items#few": "{count} Artikel"}, "cart.items#few", `"few" is not a plural form of de (one|other)`},
		{"a plural id without form", "ar", map[string]string{"cart.items": "{count}"}, "cart.items", "give its forms"},
		{"a form of a plain id", "en", map[string]string{"panel.title#one": "Cart"}, "panel.title#one", "not a plural message id"},
		{"a brace alone", "en", map[string]string{"line.remove.label": "Remove {name"}, "line.remove.label", "braces"},
		{"empty", "en", map[string]string{"panel.title": " "}, "panel.title", "empty"},
		{"too long", "en", map[string]string{"panel.title": strings.Repeat("x", maxCustomMessageLen+1)}, "panel.title", "longer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := checkMessages(tt.lang, tt.msgs)
			if tt.badID == "" {
				if err != nil {
					t.Fatalf("checkMessages: %v", err)
				}
				if len(got) != len(tt.msgs) {
					t.Errorf("checkMessages kept %d messages, want %d", len(got), len(tt.msgs))
				}
				for k, v := range got {
					if v != strings.TrimSpace(tt.msgs[k]) {
						t.Errorf("%s = %q, want %q trimmed", k, v, tt.msgs[k])
					}
				}
				return
			}
			var me *MessageError
			if !errors.As(err, &me) {
				t.Fatalf("checkMessages = %v, %v; want a *MessageError", got, err)
			}
			if me.ID != tt.badID || !strings.Contains(me.Reason, tt.reason) || !strings.Contains(err.Error(), `"`+tt.badID+`"`) {
				t.Errorf("refused %q: %q (%v); want %q: …%s…", me.ID, me.Reason, err, tt.badID, tt.reason)
			}
		})
	}
}
