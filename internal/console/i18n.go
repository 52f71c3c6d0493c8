package console

import (
	"net/http"
	"strings"
)

// Languages of the pages: Japanese and English, chosen by the browser's
// Accept-Language unless the person picked one with the switch (a cookie).
// The centre's dashboard uses the same.
const (
	LangJA     = "ja"
	LangEN     = "en"
	LangCookie = "sekisho_lang"
)

// LangOf picks the page language for r.
func LangOf(r *http.Request) string {
	if c, err := r.Cookie(LangCookie); err == nil && (c.Value == LangJA || c.Value == LangEN) {
		return c.Value
	}
	for _, part := range strings.Split(r.Header.Get("Accept-Language"), ",") {
		tag, _, _ := strings.Cut(strings.TrimSpace(part), ";")
		switch strings.ToLower(strings.SplitN(tag, "-", 2)[0]) {
		case LangJA:
			return LangJA
		case LangEN:
			return LangEN
		}
	}
	return LangEN
}

// words are the pages' texts: key -> {English, Japanese}. A key missing
// here shows as itself, which a test catches.
var words = map[string][2]string{
	"brand":               {"sekisho", "関所"},
	"nav.dashboard":       {"Dashboard", "ダッシュボード"},
	"nav.extensions":      {"Extensions", "内線"},
	"nav.trunks":          {"Trunks & numbers", "回線と番号"},
	"nav.policy":          {"Toll policy", "発信規制"},
	"nav.security":        {"Bans", "遮断"},
	"nav.calls":           {"Call records", "通話記録"},
	"nav.evidence":        {"Evidence log", "証跡ログ"},
	"nav.settings":        {"Settings", "設定"},
	"logout":              {"Log out", "ログアウト"},
	"forward":             {"Forward", "転送"},
	"fwd.always":          {"always", "常時"},
	"fwd.busy":            {"when busy", "話中時"},
	"fwd.noanswer":        {"no answer", "無応答時"},
	"fwd.to":              {"to", "転送先"},
	"fwd.clear":           {"clear", "解除"},
	"remote.session":      {"maintenance session from the vendor's centre", "ベンダーのセンターからの保守セッション"},
	"signed.in.as":        {"Signed in as", "ログイン中:"},
	"setup.title":         {"First start: create the administrator", "初回設定: 管理者を作成"},
	"setup.intro":         {"Use the one-time setup token printed when sekisho started. It expires one hour after the start.", "sekisho の起動時に表示された一回限りのセットアップトークンを入力してください。起動から1時間で失効します。"},
	"setup.token":         {"Setup token", "セットアップトークン"},
	"setup.done":          {"Setup is done. Log in.", "初回設定は完了しています。ログインしてください。"},
	"username":            {"User name", "ユーザー名"},
	"password":            {"Password", "パスワード"},
	"password.hint":       {"At least 12 characters, not a common password.", "12文字以上。よく使われるパスワードは使えません。"},
	"totp.scan":           {"Scan this code with an authenticator app, then type the 6 digits it shows.", "認証アプリでこのコードを読み取り、表示された6桁を入力してください。"},
	"totp.secret":         {"Or type this key", "またはこのキーを入力"},
	"totp.code":           {"6-digit code", "6桁のコード"},
	"create":              {"Create", "作成"},
	"login.title":         {"Log in", "ログイン"},
	"login":               {"Log in", "ログイン"},
	"enrol.title":         {"Set up your second factor", "二要素認証の設定"},
	"enrol.intro":         {"This account has no second factor yet. Type your password again and the code from the app.", "このアカウントには二要素認証がまだありません。パスワードをもう一度入力し、アプリのコードを入力してください。"},
	"dash.registered":     {"Phones registered", "登録中の電話機"},
	"dash.calls":          {"Calls in progress", "通話中"},
	"dash.spend":          {"Estimated spend today", "本日の推定通話料"},
	"dash.bans":           {"Addresses banned", "遮断中のアドレス"},
	"dash.today":          {"Today's outbound calls by country", "本日の発信(国別)"},
	"dash.alerts":         {"Alerts in the last 24 hours", "過去24時間の警報"},
	"dash.suspended":      {"Suspended extensions", "停止中の内線"},
	"dash.frozen":         {"International calls are FROZEN for the whole PBX", "国際発信は全体で凍結中"},
	"dash.nothing":        {"Nothing to report.", "報告事項はありません。"},
	"country":             {"Country", "国"},
	"calls":               {"Calls", "通話数"},
	"spend":               {"Spend", "料金"},
	"time":                {"Time", "時刻"},
	"kind":                {"Kind", "種別"},
	"subject":             {"Subject", "対象"},
	"detail":              {"Detail", "詳細"},
	"number":              {"Number", "番号"},
	"name":                {"Name", "名前"},
	"state":               {"State", "状態"},
	"registered":          {"registered", "登録中"},
	"not.registered":      {"not registered", "未登録"},
	"suspended":           {"SUSPENDED", "停止中"},
	"unlock":              {"Unlock", "停止解除"},
	"delete":              {"Delete", "削除"},
	"save":                {"Save", "保存"},
	"profile":             {"Profile", "プロファイル"},
	"class":               {"Class of service", "発信クラス"},
	"countries":           {"Countries abroad", "国際発信先"},
	"networks":            {"Networks", "許可ネットワーク"},
	"ext.add":             {"Add an extension", "内線を追加"},
	"ext.digest":          {"Digest", "ダイジェスト"},
	"ext.created":         {"Extension created", "内線を作成しました"},
	"ext.shown.once":      {"The password is shown only now: sekisho keeps only digest hashes of it. Scan the code with the phone or copy the password.", "パスワードは今回だけ表示されます(sekisho はダイジェストハッシュのみ保存します)。電話機でコードを読み取るか、パスワードを控えてください。"},
	"ext.edit":            {"Edit policy", "規制を編集"},
	"ext.keep":            {"(unchanged)", "(変更なし)"},
	"trunk.peer":          {"Carrier", "通信事業者"},
	"trunk.format":        {"Number format", "番号形式"},
	"trunk.noreg":         {"no registration (the carrier knows this address)", "登録なし (事業者側で IP 認証)"},
	"trunk.none":          {"No trunk yet: add one with sekisho trunk add.", "回線はまだありません: sekisho trunk add で追加してください。"},
	"did.title":           {"Numbers (DIDs)", "着信番号 (DID)"},
	"did.ext":             {"Rings extension", "着信先内線"},
	"policy.profiles":     {"Profiles", "プロファイル"},
	"policy.hours":        {"Hours abroad", "国際発信の時間帯"},
	"policy.maxdur":       {"Longest call", "最長通話時間"},
	"policy.limits":       {"Limits", "上限"},
	"policy.scope":        {"Scope", "範囲"},
	"policy.rates":        {"Rate table (per minute)", "料金表 (1分あたり)"},
	"policy.prefix":       {"Prefix", "プレフィックス"},
	"policy.per.minute":   {"Per minute", "1分あたり"},
	"policy.note":         {"Note", "メモ"},
	"policy.set.rate":     {"Set a rate", "料金を設定"},
	"policy.edit.profile": {"Edit profile", "プロファイルを編集:"},
	"policy.new.profile":  {"New profile", "新しいプロファイル"},
	"policy.check":        {"Check a number", "番号を確認"},
	"policy.from":         {"From extension", "発信内線"},
	"policy.dialled":      {"Dialled", "ダイヤル"},
	"policy.check.go":     {"Check", "確認"},
	"policy.decision":     {"Decision", "判定"},
	"policy.reasons":      {"Reasons", "理由"},
	"policy.unfreeze":     {"Lift the freeze", "凍結を解除"},
	"limit.max_calls":     {"Calls at once", "同時通話数"},
	"limit.intl_minute":   {"Abroad per minute", "国際/分"},
	"limit.intl_hour":     {"Abroad per hour", "国際/時"},
	"limit.same_prefix":   {"Same prefix in a row", "同一プレフィックス連続"},
	"limit.distinct":      {"Distinct numbers abroad per hour", "国際の異なる番号/時"},
	"limit.daily_spend":   {"Daily spend", "1日の料金上限"},
	"ban.address":         {"Address", "アドレス"},
	"ban.until":           {"Until", "期限"},
	"ban.reason":          {"Reason", "理由"},
	"ban.offences":        {"Offences", "違反回数"},
	"ban.lift":            {"Unban", "遮断解除"},
	"ban.none":            {"No address is banned.", "遮断中のアドレスはありません。"},
	"cdr.search":          {"Search", "検索"},
	"cdr.since":           {"Within (e.g. 24h)", "期間 (例: 24h)"},
	"cdr.csv":             {"Download CSV", "CSV をダウンロード"},
	"cdr.caller":          {"Caller", "発信者"},
	"cdr.dialled":         {"Dialled", "ダイヤル"},
	"cdr.sent":            {"Sent to carrier", "事業者へ送信"},
	"cdr.result":          {"Result", "結果"},
	"cdr.duration":        {"Seconds", "秒"},
	"cdr.cost":            {"Cost", "料金"},
	"ev.verify":           {"Chain and signatures", "チェーンと署名"},
	"ev.ok":               {"intact", "改ざんなし"},
	"ev.broken":           {"BROKEN", "破損"},
	"ev.records":          {"records", "件"},
	"ev.checkpoints":      {"signed checkpoints", "署名済みチェックポイント"},
	"ev.seq":              {"#", "#"},
	"ev.type":             {"Type", "種別"},
	"ev.source":           {"Source", "発生元"},
	"ev.target":           {"Target", "対象"},
	"ev.count":            {"Count", "回数"},
	"set.maintenance":     {"Vendor maintenance access", "保守業者のアクセス"},
	"set.maint.on":        {"allowed", "許可"},
	"set.maint.off":       {"switched off", "停止"},
	"set.maint.switch":    {"Switch", "切り替え"},
	"set.users":           {"Console accounts", "コンソールのアカウント"},
	"set.role":            {"Role", "権限"},
	"set.totp":            {"Second factor", "二要素認証"},
	"set.add.user":        {"Add an account", "アカウントを追加"},
	"set.region":          {"Region", "地域"},
	"set.realm":           {"Realm", "レルム"},
	"yes":                 {"yes", "あり"},
	"no":                  {"no", "なし"},
	"lang.switch":         {"日本語", "English"},
	"err.forbidden.role":  {"Your role may not do this.", "この操作の権限がありません。"},
	"saved":               {"Saved.", "保存しました。"},
}

// translate returns key's text in lang.
func translate(lang, key string) string { return Translate(words, lang, key) }

// Translate returns key's text in lang from table (key -> {English,
// Japanese}); a key missing from it shows as itself.
func Translate(table map[string][2]string, lang, key string) string {
	w, ok := table[key]
	if !ok {
		return key
	}
	if lang == LangJA {
		return w[1]
	}
	return w[0]
}
