"""The widget's own words (buttons, placeholders, status lines) in every language kefu has texts for.

What the bot says comes from the core; these are only the panel's labels, chosen by the
browser's language. The merchant sets the title and greeting in [web_chat].
"""

from __future__ import annotations

KEYS = ("open", "close", "placeholder", "send", "typing", "reconnecting", "not_sent", "greeting", "you",
        "assistant", "agent", "unavailable", "log")

LABELS: dict[str, dict[str, str]] = {
    "en": {"open": "Chat with us", "close": "Close chat", "placeholder": "Type your message…", "send": "Send",
           "typing": "Typing…", "reconnecting": "Connection lost. Reconnecting…",
           "not_sent": "Not sent. Tap to try again.", "greeting": "Hi! How can we help you today?",
           "you": "You", "assistant": "Assistant", "agent": "Agent",
           "unavailable": "The chat is unavailable right now. Please try again later.", "log": "Conversation"},
    "zh": {"open": "在线客服", "close": "关闭聊天", "placeholder": "请输入您的消息…", "send": "发送",
           "typing": "正在输入…", "reconnecting": "连接已断开，正在重新连接…", "not_sent": "未发送，点击重试。",
           "greeting": "您好！有什么可以帮您？", "you": "您", "assistant": "客服助手", "agent": "人工客服",
           "unavailable": "聊天暂时不可用，请稍后再试。", "log": "对话"},
    "de": {"open": "Chat mit uns", "close": "Chat schließen", "placeholder": "Ihre Nachricht…", "send": "Senden",
           "typing": "Schreibt…", "reconnecting": "Verbindung unterbrochen. Verbinde neu…",
           "not_sent": "Nicht gesendet. Tippen, um es erneut zu versuchen.",
           "greeting": "Hallo! Wie können wir helfen?", "you": "Sie", "assistant": "Assistent",
           "agent": "Mitarbeiter", "unavailable": "Der Chat ist gerade nicht verfügbar. Bitte später erneut versuchen.",
           "log": "Unterhaltung"},
    "fr": {"open": "Discuter avec nous", "close": "Fermer la discussion", "placeholder": "Votre message…",
           "send": "Envoyer", "typing": "Écrit…", "reconnecting": "Connexion perdue. Reconnexion…",
           "not_sent": "Non envoyé. Touchez pour réessayer.", "greeting": "Bonjour ! Comment pouvons-nous vous aider ?",
           "you": "Vous", "assistant": "Assistant", "agent": "Conseiller",
           "unavailable": "La discussion est indisponible pour le moment. Réessayez plus tard.",
           "log": "Conversation"},
    "es": {"open": "Chatea con nosotros", "close": "Cerrar chat", "placeholder": "Escribe tu mensaje…",
           "send": "Enviar", "typing": "Escribiendo…", "reconnecting": "Conexión perdida. Reconectando…",
           "not_sent": "No enviado. Toca para reintentar.", "greeting": "¡Hola! ¿En qué podemos ayudarte?",
           "you": "Tú", "assistant": "Asistente", "agent": "Agente",
           "unavailable": "El chat no está disponible ahora. Inténtalo más tarde.", "log": "Conversación"},
    "it": {"open": "Chatta con noi", "close": "Chiudi la chat", "placeholder": "Scrivi il tuo messaggio…",
           "send": "Invia", "typing": "Sta scrivendo…", "reconnecting": "Connessione persa. Riconnessione…",
           "not_sent": "Non inviato. Tocca per riprovare.", "greeting": "Ciao! Come possiamo aiutarti?",
           "you": "Tu", "assistant": "Assistente", "agent": "Operatore",
           "unavailable": "La chat non è disponibile ora. Riprova più tardi.", "log": "Conversazione"},
    "nl": {"open": "Chat met ons", "close": "Chat sluiten", "placeholder": "Typ je bericht…", "send": "Versturen",
           "typing": "Typt…", "reconnecting": "Verbinding verbroken. Opnieuw verbinden…",
           "not_sent": "Niet verstuurd. Tik om het opnieuw te proberen.", "greeting": "Hallo! Waarmee kunnen we helpen?",
           "you": "Jij", "assistant": "Assistent", "agent": "Medewerker",
           "unavailable": "De chat is nu niet beschikbaar. Probeer het later opnieuw.", "log": "Gesprek"},
    "pt": {"open": "Fale connosco", "close": "Fechar chat", "placeholder": "Escreva a sua mensagem…",
           "send": "Enviar", "typing": "A escrever…", "reconnecting": "Ligação perdida. A ligar de novo…",
           "not_sent": "Não enviada. Toque para tentar de novo.", "greeting": "Olá! Como podemos ajudar?",
           "you": "Você", "assistant": "Assistente", "agent": "Atendente",
           "unavailable": "O chat não está disponível agora. Tente mais tarde.", "log": "Conversa"},
    "ja": {"open": "チャットで相談", "close": "チャットを閉じる", "placeholder": "メッセージを入力…", "send": "送信",
           "typing": "入力中…", "reconnecting": "接続が切れました。再接続しています…",
           "not_sent": "送信できませんでした。タップして再試行。", "greeting": "こんにちは！ご用件をどうぞ。",
           "you": "あなた", "assistant": "アシスタント", "agent": "担当者",
           "unavailable": "現在チャットをご利用いただけません。後でもう一度お試しください。", "log": "会話"},
    "ko": {"open": "채팅 상담", "close": "채팅 닫기", "placeholder": "메시지를 입력하세요…", "send": "보내기",
           "typing": "입력 중…", "reconnecting": "연결이 끊겼습니다. 다시 연결하는 중…",
           "not_sent": "전송되지 않았습니다. 눌러서 다시 시도하세요.", "greeting": "안녕하세요! 무엇을 도와드릴까요?",
           "you": "나", "assistant": "도우미", "agent": "상담원",
           "unavailable": "지금은 채팅을 사용할 수 없습니다. 나중에 다시 시도하세요.", "log": "대화"},
    "ru": {"open": "Написать нам", "close": "Закрыть чат", "placeholder": "Введите сообщение…",
           "send": "Отправить", "typing": "Печатает…", "reconnecting": "Связь потеряна. Переподключение…",
           "not_sent": "Не отправлено. Нажмите, чтобы повторить.", "greeting": "Здравствуйте! Чем можем помочь?",
           "you": "Вы", "assistant": "Помощник", "agent": "Оператор",
           "unavailable": "Чат сейчас недоступен. Попробуйте позже.", "log": "Переписка"},
    "pl": {"open": "Czat z nami", "close": "Zamknij czat", "placeholder": "Napisz wiadomość…", "send": "Wyślij",
           "typing": "Pisze…", "reconnecting": "Utracono połączenie. Łączenie ponownie…",
           "not_sent": "Nie wysłano. Dotknij, aby ponowić.", "greeting": "Cześć! Jak możemy pomóc?",
           "you": "Ty", "assistant": "Asystent", "agent": "Konsultant",
           "unavailable": "Czat jest teraz niedostępny. Spróbuj później.", "log": "Rozmowa"},
    "tr": {"open": "Bize yazın", "close": "Sohbeti kapat", "placeholder": "Mesajınızı yazın…", "send": "Gönder",
           "typing": "Yazıyor…", "reconnecting": "Bağlantı koptu. Yeniden bağlanıyor…",
           "not_sent": "Gönderilemedi. Yeniden denemek için dokunun.", "greeting": "Merhaba! Nasıl yardımcı olabiliriz?",
           "you": "Siz", "assistant": "Asistan", "agent": "Temsilci",
           "unavailable": "Sohbet şu anda kullanılamıyor. Lütfen daha sonra deneyin.", "log": "Sohbet"},
    "ar": {"open": "تحدث معنا", "close": "إغلاق المحادثة", "placeholder": "اكتب رسالتك…", "send": "إرسال",
           "typing": "يكتب…", "reconnecting": "انقطع الاتصال. جارٍ إعادة الاتصال…",
           "not_sent": "لم تُرسل. اضغط لإعادة المحاولة.", "greeting": "مرحبًا! كيف يمكننا مساعدتك؟",
           "you": "أنت", "assistant": "المساعد", "agent": "موظف الدعم",
           "unavailable": "المحادثة غير متاحة الآن. حاول لاحقًا.", "log": "المحادثة"},
    "id": {"open": "Chat dengan kami", "close": "Tutup chat", "placeholder": "Tulis pesan Anda…", "send": "Kirim",
           "typing": "Mengetik…", "reconnecting": "Koneksi terputus. Menyambung ulang…",
           "not_sent": "Tidak terkirim. Ketuk untuk mencoba lagi.", "greeting": "Halo! Ada yang bisa kami bantu?",
           "you": "Anda", "assistant": "Asisten", "agent": "Agen",
           "unavailable": "Chat sedang tidak tersedia. Silakan coba lagi nanti.", "log": "Percakapan"},
    "th": {"open": "แชทกับเรา", "close": "ปิดแชท", "placeholder": "พิมพ์ข้อความ…", "send": "ส่ง",
           "typing": "กำลังพิมพ์…", "reconnecting": "การเชื่อมต่อขาดหาย กำลังเชื่อมต่อใหม่…",
           "not_sent": "ส่งไม่สำเร็จ แตะเพื่อลองอีกครั้ง", "greeting": "สวัสดีค่ะ มีอะไรให้เราช่วยไหมคะ",
           "you": "คุณ", "assistant": "ผู้ช่วย", "agent": "เจ้าหน้าที่",
           "unavailable": "แชทไม่พร้อมใช้งานในขณะนี้ โปรดลองใหม่ภายหลัง", "log": "บทสนทนา"},
    "vi": {"open": "Trò chuyện với chúng tôi", "close": "Đóng trò chuyện", "placeholder": "Nhập tin nhắn…",
           "send": "Gửi", "typing": "Đang nhập…", "reconnecting": "Mất kết nối. Đang kết nối lại…",
           "not_sent": "Chưa gửi được. Chạm để thử lại.", "greeting": "Xin chào! Chúng tôi có thể giúp gì cho bạn?",
           "you": "Bạn", "assistant": "Trợ lý", "agent": "Nhân viên",
           "unavailable": "Hiện không thể trò chuyện. Vui lòng thử lại sau.", "log": "Cuộc trò chuyện"},
}
RIGHT_TO_LEFT = frozenset({"ar"})


def pick_language(requested: str | None, default: str) -> str:
    """The browser's language when the widget has labels for it, else the shop's default, else English."""
    code = (requested or "").split("-")[0].split("_")[0].lower()
    if code in LABELS:
        return code
    return default if default in LABELS else "en"


def labels_for(language: str) -> dict[str, str]:
    return LABELS.get(language, LABELS["en"])
