package centre

import (
	"net/http"
	"strings"
)

// The dashboard's languages, as the unit console's: Japanese and
// English, by the browser's Accept-Language unless the operator picked
// one with the switch (the same cookie as the console's).
const (
	langJA     = "ja"
	langEN     = "en"
	langCookie = "sekisho_lang"
)

func dashLangOf(r *http.Request) string {
	if c, err := r.Cookie(langCookie); err == nil && (c.Value == langJA || c.Value == langEN) {
		return c.Value
	}
	for _, part := range strings.Split(r.Header.Get("Accept-Language"), ",") {
		tag, _, _ := strings.Cut(strings.TrimSpace(part), ";")
		switch strings.ToLower(strings.SplitN(tag, "-", 2)[0]) {
		case langJA:
			return langJA
		case langEN:
			return langEN
		}
	}
	return langEN
}

// dashWords are the dashboard's texts: key -> {English, Japanese}. A key
// missing here shows as itself, which a test catches. Read only.
var dashWords = map[string][2]string{
	"brand":              {"sekisho centre", "関所センター"},
	"nav.fleet":          {"Fleet", "フリート"},
	"nav.push":           {"Push a bundle", "ポリシー配信"},
	"nav.log":            {"Operator log", "操作ログ"},
	"nav.operators":      {"Operators", "オペレーター"},
	"nav.unit":           {"Unit", "ユニット"},
	"logout":             {"Log out", "ログアウト"},
	"signed.in.as":       {"Signed in as", "ログイン中:"},
	"lang.switch":        {"日本語", "English"},
	"setup.title":        {"Set up your operator account", "オペレーターアカウントの設定"},
	"setup.intro":        {"Choose a password and enrol a second factor. This link works once, for one hour.", "パスワードを決め、二要素認証を登録してください。このリンクは1時間、1回だけ使えます。"},
	"setup.invalid":      {"Ask an admin for a new link.", "管理者に新しいリンクを依頼してください。"},
	"operator":           {"Operator", "オペレーター"},
	"role":               {"Role", "権限"},
	"name":               {"Name", "名前"},
	"password":           {"Password", "パスワード"},
	"password.hint":      {"At least 16 characters, not built on a common password, not your name.", "16文字以上。よく使われるパスワードや名前を含むものは使えません。"},
	"totp.scan":          {"Scan this code with an authenticator app, then type the 6 digits it shows.", "認証アプリでこのコードを読み取り、表示された6桁を入力してください。"},
	"totp.secret":        {"Or type this key", "またはこのキーを入力"},
	"totp.code":          {"6-digit code", "6桁のコード"},
	"create":             {"Create", "作成"},
	"login.title":        {"Log in to the fleet dashboard", "フリートダッシュボードにログイン"},
	"login":              {"Log in", "ログイン"},
	"login.none":         {"No operator yet. On the centre, run: sekisho centre operator add NAME --role admin", "オペレーターがまだいません。センターで次を実行してください: sekisho centre operator add NAME --role admin"},
	"fleet.online":       {"Units online", "オンラインのユニット"},
	"fleet.calls":        {"Calls in progress", "通話中"},
	"fleet.today":        {"Outbound calls today", "本日の発信"},
	"fleet.spend":        {"Estimated spend today", "本日の推定通話料"},
	"fleet.alerts24":     {"Alerts in the last 24 hours", "過去24時間の警報"},
	"fleet.units":        {"Units", "ユニット"},
	"fleet.coverage":     {"Newest bundle", "最新のポリシー"},
	"fleet.applied.of":   {"applied", "適用済み"},
	"fleet.stragglers":   {"Not applied yet", "未適用"},
	"fleet.refused":      {"Refused", "拒否"},
	"fleet.no.bundle":    {"No bundle pushed yet.", "まだポリシーを配信していません。"},
	"fleet.alerts":       {"Latest alerts", "最新の警報"},
	"fleet.revoked":      {"Revoked units", "失効したユニット"},
	"fleet.none":         {"No unit has enrolled yet: make a token with sekisho centre enrol-token.", "登録済みのユニットはありません: sekisho centre enrol-token でトークンを作成してください。"},
	"col.phones":         {"Phones", "電話機"},
	"col.calls":          {"Calls now", "通話中"},
	"col.today":          {"Today", "本日"},
	"col.blocked":        {"Abroad blocked", "国際遮断"},
	"col.bundle":         {"Bundle", "ポリシー"},
	"col.suspended":      {"Suspended", "停止内線"},
	"col.maintenance":    {"Maintenance", "保守"},
	"col.alerts":         {"Alerts 24 h", "警報 24h"},
	"unit.id":            {"ID", "ID"},
	"unit.group":         {"Group", "グループ"},
	"unit.version":       {"Version", "バージョン"},
	"unit.state":         {"State", "状態"},
	"unit.contact":       {"Last contact", "最終通信"},
	"unit.phones":        {"Phones registered", "登録電話機"},
	"unit.calls":         {"Calls now", "通話中"},
	"unit.today":         {"Calls today", "本日の発信"},
	"unit.spend":         {"Spend today", "本日の料金"},
	"unit.top":           {"Top countries", "主な発信先"},
	"unit.blocked":       {"Calls abroad blocked", "国際発信の遮断"},
	"unit.applied":       {"Bundle applied", "適用済みポリシー"},
	"unit.suspended":     {"Suspended extensions", "停止中の内線"},
	"unit.maintenance":   {"Maintenance allowed", "保守アクセス"},
	"unit.online":        {"online", "オンライン"},
	"unit.offline":       {"offline", "オフライン"},
	"unit.revoked":       {"revoked", "失効"},
	"unit.enrolled":      {"Enrolled", "登録日時"},
	"unit.fingerprint":   {"Certificate", "証明書"},
	"unit.status":        {"Last status", "最新の状態"},
	"unit.status.at":     {"Reported at", "報告日時"},
	"unit.extensions":    {"Extensions", "内線数"},
	"unit.frozen":        {"Frozen abroad", "国際発信の凍結"},
	"unit.evidence":      {"Evidence log written", "証跡ログの記録"},
	"unit.no.status":     {"The unit has sent no status yet.", "ユニットからの状態報告はまだありません。"},
	"unit.raw":           {"As the unit sent it", "ユニットが送った内容"},
	"unit.alerts":        {"Alerts", "警報"},
	"unit.acks":          {"Bundles received", "受信したポリシー"},
	"unit.console":       {"Open the unit's console", "ユニットのコンソールを開く"},
	"unit.revoke":        {"Revoke this unit", "このユニットを失効させる"},
	"unit.revoke.intro":  {"Its certificate opens no stream again and its stream ends now; it must enrol anew to come back. Type the unit's name to confirm:", "証明書は二度と接続に使えず、接続はすぐに切断されます。戻すには再登録が必要です。確認のためユニット名を入力してください:"},
	"unit.revoke.go":     {"Revoke", "失効させる"},
	"unit.confirm.wrong": {"That is not the unit's name: nothing was revoked.", "ユニット名が一致しません。失効させていません。"},
	"unit.revoked.done":  {"The unit is revoked.", "ユニットを失効させました。"},
	"seq":                {"Bundle", "ポリシー"},
	"ok":                 {"Result", "結果"},
	"applied":            {"applied", "適用"},
	"refused":            {"refused", "拒否"},
	"note":               {"Note", "メモ"},
	"time":               {"Time", "時刻"},
	"kind":               {"Kind", "種別"},
	"subject":            {"Subject", "対象"},
	"detail":             {"Detail", "詳細"},
	"delivered":          {"Delivered", "転送"},
	"country":            {"Country", "国"},
	"calls":              {"Calls", "通話数"},
	"spend":              {"Spend", "料金"},
	"yes":                {"yes", "はい"},
	"no":                 {"no", "いいえ"},
	"unknown":            {"unknown", "不明"},
	"nothing":            {"Nothing to report.", "報告事項はありません。"},
	"push.intro":         {"A bundle is the whole policy the units take from the centre: it is signed with the centre's key and reaches every connected unit within a second, the others when they reconnect. A newer bundle replaces it. A bundle pushed here carries no rate table, so the units keep theirs (sekisho centre push --rates sends one).", "ポリシーはセンターから配る方針の全体です。センターの鍵で署名され、接続中のユニットには1秒以内に、その他のユニットには再接続時に届きます。新しいポリシーで置き換わります。ここから配るポリシーには料金表が含まれないため、各ユニットの料金表はそのままです(料金表は sekisho centre push --rates で配信)。"},
	"push.block":         {"Calls abroad", "国際発信"},
	"push.block.pick":    {"choose…", "選択…"},
	"push.block.yes":     {"block on every unit it reaches", "届いたユニットで遮断する"},
	"push.block.no":      {"allow (each unit's own limits still apply)", "許可する(各ユニットの制限は有効)"},
	"push.group":         {"Group (empty: every unit)", "グループ(空欄: 全ユニット)"},
	"push.note":          {"Note (shown on the units and in their evidence logs)", "メモ(ユニットとその証跡ログに表示)"},
	"push.go":            {"Sign and push", "署名して配信"},
	"push.done":          {"Bundle %d signed and stored: connected units get it within a second.", "ポリシー %d を署名して保存しました。接続中のユニットには1秒以内に届きます。"},
	"push.block.choose":  {"Choose whether calls abroad are blocked or allowed: each bundle is the whole policy.", "国際発信を遮断するか許可するか選んでください(ポリシーは方針の全体です)。"},
	"push.group.bad":     {"At most 64 printable characters.", "表示可能な文字で64文字まで。"},
	"push.note.long":     {"At most 256 characters.", "256文字まで。"},
	"push.current":       {"Newest bundle now", "現在の最新ポリシー"},
	"log.operator":       {"Operator", "オペレーター"},
	"log.action":         {"Action", "操作"},
	"log.target":         {"Target", "対象"},
	"op.add":             {"Add an operator", "オペレーターを追加"},
	"op.add.go":          {"Add and make a setup link", "追加して設定リンクを作成"},
	"op.link":            {"Send this link to the operator by a channel you trust. It works once, until", "このリンクを信頼できる方法でオペレーターに渡してください。1回だけ有効、期限:"},
	"op.state":           {"State", "状態"},
	"op.active":          {"active", "有効"},
	"op.waiting":         {"waiting for setup until", "設定待ち、期限:"},
	"op.locked":          {"locked until", "ロック中、期限:"},
	"op.last":            {"Last login", "最終ログイン"},
	"op.created":         {"Added", "追加日時"},
	"op.delete":          {"Delete", "削除"},
	"op.self":            {"You cannot delete your own account here.", "自分のアカウントはここでは削除できません。"},
	"op.none":            {"No such operator.", "そのオペレーターはいません。"},
	"op.deleted":         {"deleted; its sessions have ended.", "削除しました。セッションも終了しました。"},
	"role.admin":         {"admin: push, revoke, maintenance, operators", "admin: 配信・失効・保守・オペレーター管理"},
	"role.viewer":        {"viewer: see only", "viewer: 閲覧のみ"},
	"err.read":           {"Could not read the centre's database; see the centre's log.", "センターのデータベースを読めませんでした。センターのログを確認してください。"},
	"err.write":          {"Could not store the change; nothing was changed. See the centre's log.", "変更を保存できませんでした(変更なし)。センターのログを確認してください。"},
	"err.session":        {"Your session has ended; log in again.", "セッションが終了しました。もう一度ログインしてください。"},
	"err.role":           {"Your role may not do this.", "この操作の権限がありません。"},
	"err.no.unit":        {"No such unit.", "そのユニットはありません。"},
	"back":               {"Back to the fleet", "フリートに戻る"},
}

func dashTranslate(lang, key string) string {
	w, ok := dashWords[key]
	if !ok {
		return key
	}
	if lang == langJA {
		return w[1]
	}
	return w[0]
}
