package widget

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// The shopper's language: message catalogs keyed by stable ids, the
// language chosen for the widget, plural forms, and the storefront's own
// translations (docs/translations.md).
//
// A catalog is a flat map from message id to text. Texts name their
// parameters in braces: "Remove {name} from cart". A message that depends
// on a count has one entry per plural form of the language, the id followed
// by "#" and the form ("cart.items#one", "cart.items#other"), and its count
// is {count}. The forms are CLDR's: English and German have one and other,
// Arabic zero, one, two, few, many and other.
//
// The active language is package state like priceLocale, read and written
// on the UI goroutine only: render helpers and the texts the live region
// says call tr and trn. What is kept to be shown later (a checkout note, the
// storage note) is kept as a message id, so that it follows a change of
// language.

// pluralForm is a CLDR plural category.
type pluralForm string

const (
	formZero  pluralForm = "zero"
	formOne   pluralForm = "one"
	formTwo   pluralForm = "two"
	formFew   pluralForm = "few"
	formMany  pluralForm = "many"
	formOther pluralForm = "other"
)

// pluralSep separates a plural message's id from its form in a catalog key.
const pluralSep = "#"

// defaultLanguage is the language of the texts when no other fits.
const defaultLanguage = "en"

// catalogs are the built-in catalogs by language subtag; catalogEN has
// every message.
var catalogs = map[string]map[string]string{
	"en": catalogEN,
	"de": catalogDE,
	"ar": catalogAR,
}

// rtlLanguages are the languages written right to left.
var rtlLanguages = map[string]bool{"ar": true, "he": true, "fa": true, "ur": true}

// pluralRule returns the plural form of count n in language lang (CLDR's
// rules for integers): Arabic's six forms; one and other for English,
// German and any language without a rule here.
func pluralRule(lang string, n int) pluralForm {
	if lang == "ar" {
		if n < 0 {
			n = -n
		}
		switch m := n % 100; {
		case n == 0:
			return formZero
		case n == 1:
			return formOne
		case n == 2:
			return formTwo
		case m >= 3 && m <= 10:
			return formFew
		case m >= 11 && m <= 99:
			return formMany
		}
		return formOther
	}
	if n == 1 || n == -1 {
		return formOne
	}
	return formOther
}

// pluralForms are the forms the messages of language lang have.
func pluralForms(lang string) []pluralForm {
	if lang == "ar" {
		return []pluralForm{formZero, formOne, formTwo, formFew, formMany, formOther}
	}
	return []pluralForm{formOne, formOther}
}

// language is what the widget's texts are in: its catalog, with the
// storefront's messages over it.
type language struct {
	tag    string            // the language subtag: "en", "de", "ar"
	custom map[string]string // the storefront's messages for tag
}

// active is the language of the texts shown; the UI goroutine's.
var active = language{tag: defaultLanguage}

// dir is "rtl" for a language written right to left, else "ltr".
func (l language) dir() string {
	if rtlLanguages[l.tag] {
		return "rtl"
	}
	return "ltr"
}

// lookup returns the text of key (an id, or id#form) in l: the
// storefront's, else the catalog's.
func (l language) lookup(key string) (string, bool) {
	if s, ok := l.custom[key]; ok {
		return s, true
	}
	s, ok := catalogs[l.tag][key]
	return s, ok
}

// baseLanguage returns the language subtag of a BCP 47 tag, lower case:
// "de" for "de-CH".
func baseLanguage(tag string) string {
	base, _, _ := strings.Cut(strings.TrimSpace(tag), "-")
	return strings.ToLower(base)
}

// chooseLanguage returns the language of the texts: that of locale (the
// theme's data-locale) if one is given, else the first of the browser's
// languages the widget has texts in, matched by language subtag (de-CH
// gets de); English when none fits. The widget has texts in a language
// with a catalog, or with messages of the storefront (custom, by language
// subtag).
func chooseLanguage(locale string, browser []string, custom map[string]map[string]string) string {
	has := func(lang string) bool { return catalogs[lang] != nil || len(custom[lang]) > 0 }
	if locale != "" {
		if lang := baseLanguage(locale); has(lang) {
			return lang
		}
		return defaultLanguage
	}
	for _, tag := range browser {
		if lang := baseLanguage(tag); has(lang) {
			return lang
		}
	}
	return defaultLanguage
}

// messagesLanguage is the language the storefront's messages are for:
// that of the theme's locale, else the one chosen from the browser's.
func messagesLanguage(locale string, browser []string, custom map[string]map[string]string) string {
	if locale != "" {
		return baseLanguage(locale)
	}
	return chooseLanguage("", browser, custom)
}

// tr returns message id in the active language, its placeholders replaced
// by args, given as name, value pairs: tr("line.remove.label", "name",
// "Mug"). A message missing in the language is English.
func tr(id string, args ...any) string {
	s, ok := active.lookup(id)
	if !ok {
		s = catalogEN[id]
	}
	return fill(s, args)
}

// trn returns the plural message id for count n in the active language,
// with {count} and the placeholders of args (as tr).
func trn(id string, n int, args ...any) string {
	s, ok := active.lookup(id + pluralSep + string(pluralRule(active.tag, n)))
	if !ok {
		s = catalogEN[id+pluralSep+string(pluralRule(defaultLanguage, n))]
	}
	return fill(s, append([]any{"count", n}, args...))
}

// fill replaces the placeholders of s with args, name, value pairs; a
// placeholder without a value is left as it is.
func fill(s string, args []any) string {
	if len(args) == 0 || !strings.Contains(s, "{") {
		return s
	}
	pairs := make([]string, 0, len(args))
	for i := 0; i+1 < len(args); i += 2 {
		name, _ := args[i].(string)
		var v string
		switch a := args[i+1].(type) {
		case string:
			v = a
		case int:
			v = strconv.Itoa(a)
		default:
			v = fmt.Sprint(a)
		}
		pairs = append(pairs, "{"+name+"}", v)
	}
	return strings.NewReplacer(pairs...).Replace(s)
}

// placeholders returns the names in braces in s, sorted, without
// repeats; ok is false if a brace does not open or close a plain name.
func placeholders(s string) (names []string, ok bool) {
	seen := map[string]bool{}
	for {
		open := strings.IndexAny(s, "{}")
		if open < 0 {
			break
		}
		if s[open] == '}' {
			return nil, false
		}
		end := strings.IndexAny(s[open+1:], "{}")
		if end < 0 || s[open+1+end] != '}' {
			return nil, false
		}
		name := s[open+1 : open+1+end]
		if !isPlaceholderName(name) {
			return nil, false
		}
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
		s = s[open+1+end+1:]
	}
	sort.Strings(names)
	return names, true
}

// isPlaceholderName reports whether s is a placeholder's name: lower-case
// letters and underscores.
func isPlaceholderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && r != '_' {
			return false
		}
	}
	return true
}

// Limits of the storefront's messages.
const (
	maxCustomMessages   = 500
	maxCustomMessageLen = 1000 // bytes
)

// MessageError is a storefront message the widget refuses (theme
// messages): ID is the message's key as given, "" when the refusal is about
// them all (too many).
type MessageError struct {
	ID     string
	Reason string
}

func (e *MessageError) Error() string {
	if e.ID == "" { // about all of them
		return "theme messages: " + e.Reason
	}
	return fmt.Sprintf("theme messages: %q: %s", e.ID, e.Reason)
}

// checkMessages checks the storefront's messages for language lang: every
// key must be an id of the English catalog (a plural one with a form of
// lang: "cart.items#few" in Arabic), and each text must have the
// placeholders of the English text, no more and no fewer ({count} may be
// left out of a plural form, "one item"). It returns a copy with the texts
// trimmed, or the first key refused, in key order.
func checkMessages(lang string, msgs map[string]string) (map[string]string, error) {
	if len(msgs) > maxCustomMessages {
		return nil, &MessageError{ID: "", Reason: fmt.Sprintf("more than %d messages", maxCustomMessages)}
	}
	keys := make([]string, 0, len(msgs))
	for k := range msgs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make(map[string]string, len(msgs))
	for _, key := range keys {
		s := strings.TrimSpace(msgs[key])
		if err := checkMessage(lang, key, s); err != nil {
			return nil, err
		}
		out[key] = s
	}
	return out, nil
}

// checkMessage checks one of the storefront's messages (checkMessages).
func checkMessage(lang, key, s string) error {
	refuse := func(format string, args ...any) error {
		return &MessageError{ID: key, Reason: fmt.Sprintf(format, args...)}
	}
	id, form, plural := strings.Cut(key, pluralSep)
	var english string
	if plural {
		if catalogEN[id+pluralSep+string(formOther)] == "" {
			return refuse("not a plural message id")
		}
		found := false
		for _, f := range pluralForms(lang) {
			found = found || string(f) == form
		}
		if !found {
			return refuse("%q is not a plural form of %s (%s)", form, lang, formsText(lang))
		}
		english = catalogEN[id+pluralSep+string(formOther)]
	} else {
		var ok bool
		if english, ok = catalogEN[id]; !ok {
			if catalogEN[id+pluralSep+string(formOther)] != "" {
				return refuse("a plural message: give its forms, %s#%s", id, formsText(lang))
			}
			return refuse("unknown message id")
		}
	}
	switch {
	case s == "":
		return refuse("empty text")
	case len(s) > maxCustomMessageLen:
		return refuse("longer than %d bytes", maxCustomMessageLen)
	}
	got, ok := placeholders(s)
	if !ok {
		return refuse("braces must enclose a placeholder such as {name}")
	}
	want, _ := placeholders(english)
	if plural && !contains(got, "count") {
		want = without(want, "count")
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		return refuse("placeholders %s, want %s as in English", braced(got), braced(want))
	}
	return nil
}

// formsText lists the plural forms of lang: "one|other".
func formsText(lang string) string {
	forms := pluralForms(lang)
	s := make([]string, len(forms))
	for i, f := range forms {
		s[i] = string(f)
	}
	return strings.Join(s, "|")
}

// braced writes names as "{count}, {name}", or "none".
func braced(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return "{" + strings.Join(names, "}, {") + "}"
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func without(list []string, s string) []string {
	out := make([]string, 0, len(list))
	for _, v := range list {
		if v != s {
			out = append(out, v)
		}
	}
	return out
}
