package widget

import (
	"maps"

	"github.com/maxence-charriere/go-app/v10/pkg/app"
)

// The client's part of the language (i18n.go): the browser's languages, the
// theme's locale and the storefront's messages.

// browserLanguages returns the browser's languages in the shopper's order
// (navigator.languages, else navigator.language); none natively.
func browserLanguages() []string {
	nav := app.Window().Get("navigator")
	if !nav.Truthy() {
		return nil
	}
	if list := nav.Get("languages"); list.Truthy() && list.Length() > 0 {
		out := make([]string, 0, list.Length())
		for i := 0; i < list.Length(); i++ {
			if v := list.Index(i); v.Type() == app.TypeString {
				out = append(out, v.String())
			}
		}
		return out
	}
	if v := nav.Get("language"); v.Type() == app.TypeString {
		return []string{v.String()}
	}
	return nil
}

// language is the language of the texts for the theme's locale and the
// browser's languages, with the storefront's messages for it.
func (c *client) language() language {
	tag := chooseLanguage(c.locale, c.browser, c.messages)
	return language{tag: tag, custom: c.messages[tag]}
}

// theme carries out the bridge's theme method: the CSS variables, the
// locale (texts and prices), the storefront's messages and the checkout
// mode. Everything is checked before anything changes: a refused theme
// leaves the widget as it was.
func (c *client) theme(t *themeRequest) (any, error) {
	locale := c.locale
	if t.hasLocale {
		locale = t.locale
	}
	messages := c.messages
	if t.messages != nil {
		lang := messagesLanguage(locale, c.browser, c.messages)
		checked, err := checkMessages(lang, t.messages)
		if err != nil {
			return nil, badRequest("%v", err)
		}
		// A new map: the UI goroutine may be reading the old one.
		messages = maps.Clone(c.messages)
		if messages == nil {
			messages = map[string]map[string]string{}
		}
		if len(checked) == 0 {
			delete(messages, lang)
		} else {
			messages[lang] = checked
		}
	}
	c.applyTheme(t.props)
	c.locale, c.messages = locale, messages
	lang, mode := c.language(), t.checkout
	c.dispatch(func(app.Context) {
		setLanguage(lang, locale)
		if mode != "" {
			c.w.checkoutMode = mode
		}
	})
	return true, nil
}

// setLanguage makes lang the language of the texts and locale ("" for the
// browser's) that of the prices, and tells the document: its lang, and its
// dir, which mirrors the panel for a language written right to left.
func setLanguage(lang language, locale string) {
	active, priceLocale = lang, locale
	root := app.Window().Get("document").Get("documentElement")
	if root.Truthy() {
		root.Set("lang", lang.tag)
		root.Set("dir", lang.dir())
	}
}
