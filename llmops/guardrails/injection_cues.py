"""Cue lexicons for prompt injection and jailbreaks, by family and language.

Each family is one kind of move an attacker makes; a text's score sums the strongest
cue of each family it shows (see injection.py). Weights follow how rarely a cue shows up
in ordinary prompts: "ignore all previous instructions" almost never does (3.0); "you
are a pirate" often does (0.6) and only counts together with rule-removal cues.

Families:
  override       ignore / forget the instructions given so far
  prompt_leak    reveal the system prompt or the text above
  new_task       announce a replacement task
  rule_removal   no rules, no filters, not bound by policies, never refuse
  named          well-known jailbreak names and modes (DAN, developer mode)
  persona        set up a role (weak on its own: ordinary role prompts do it)
  persona_switch you are no longer an AI / from now on you are
  stay           stay in character, never break character
  dual           answer twice: the normal way and the "unfiltered" way
  threat         token games, threats of deletion
  compliance     always answer, answer every request, no warnings
  permission     explicit, illegal or harmful content allowed
  ai_meta        talks to the model about being an AI model (ChatGPT, OpenAI...)
  spoof          fake system / admin markers and chat-template tokens
  hijack         "just print ...", "stop everything"
  pivot          praise followed by "now..." (a common task switch)
  fiction        hypothetical world framing
  encoded        asks to decode a blob and follow it
"""

from __future__ import annotations

from llmops.guardrails.cues import Cue, alt, cue

_ANY = r"[^.!?\n]"  # stays within one sentence

# --- English ---------------------------------------------------------------------------

_STRONG_OVERRIDE = "ignore ignoring ignored disregard disregarding forget forgetting dismiss neglect"
_WEAK_OVERRIDE = "skip drop abandon discard erase delete remove clear reset scrap override overriding bypass cancel void revoke nullify"
# Nouns that only mean the model's instructions ("orders", "commands", "rules" also name
# shop orders, shell commands and firewall rules, which people do cancel and clear).
_LEAK_NOUNS = "instructions instruction prompts prompt directives directions guidelines programming"
_INSTRUCTION_NOUNS = (
    "instructions instruction prompts prompt rules directives directions guidelines guidance "
    "programming training commands orders tasks task assignments assignment constraints "
    "restrictions policies guardrails system_prompt"
)
_BEFORE = "previous prior preceding above earlier former foregoing initial original old past last given existing"

ENGLISH: list[Cue] = [
    # override
    cue("override", 3.0, _STRONG_OVERRIDE,
        rf"\b{alt(_STRONG_OVERRIDE)}\b(?:\s+[\w',&-]+){{0,2}}?\s+{alt(_BEFORE)}(?:\s+[\w',&-]+){{0,3}}?\s+{alt(_INSTRUCTION_NOUNS)}\b"),
    cue("override", 2.5, _STRONG_OVERRIDE + " bypass override",
        rf"\b{alt(_STRONG_OVERRIDE + ' bypass override')}\s+(?:(?:all|any|every|each)\s+(?:of\s+)?(?:your\s+|the\s+)?|your\s+)(?:\w+\s+)?{alt(_INSTRUCTION_NOUNS)}\b"),
    cue("override", 2.5, _WEAK_OVERRIDE,
        rf"\b{alt(_WEAK_OVERRIDE)}\b(?:\s+[\w',&-]+){{0,2}}?\s+{alt(_BEFORE)}(?:\s+[\w',&-]+){{0,2}}?\s+{alt(_LEAK_NOUNS)}\b"),
    cue("override", 3.0, _STRONG_OVERRIDE,
        rf"\b{alt(_STRONG_OVERRIDE)}\s+(?:about\s+)?(?:all|everything|anything|what)\s+(?:\w+\s+){{0,3}}?{alt(_BEFORE + ' before so_far until_now')}\b"),
    cue("override", 2.5, "forget disregard ignore",
        r"\b(?:forget|disregard|ignore)\s+(?:all\s+of\s+)?(?:the|everything)\s+(?:above|previous|prior|preceding|foregoing|earlier)\b"),
    cue("override", 1.2, "ignore disregard",
        r"\b(?:ignore|disregard)\s+(?:the\s+)?(?:user'?s?|original|real|actual)\s+(?:question|request|input|message|prompt|task)"),
    cue("override", 2.5, "forget disregard ignore",
        r"\b(?:forget|disregard|ignore)\s+(?:about\s+)?(?:everything|all|anything|what)\s+(?:(?:that\s+)?(?:you|i|we)\s+(?:have\s+|'ve\s+)?(?:been\s+)?(?:said|told|learned|learnt|know|knew|were\s+told|was\s+told|wrote|written|asked))"),
    cue("override", 3.0, _STRONG_OVERRIDE,
        rf"\b{alt(_STRONG_OVERRIDE)}\s+(?:all\s+|the\s+|any\s+|of\s+)*(?:instructions|directions|directives|prompts?|guidelines|rules)\s+(?:above|before|earlier|so\s+far|from\s+before|(?:that\s+)?(?:you\s+(?:were|have\s+been)\s+given|you\s+(?:got|received|have)))\b"),
    cue("override", 2.5, "leave",
        r"\bleave\s+(?:all\s+)?(?:of\s+)?(?:the\s+|your\s+)?(?:previous|prior|earlier|above|old)\s+(?:information|instructions|tasks|context|conversation|prompts?|rules|guidelines|directions|input)\s+behind\b"),
    cue("new_task", 1.5, "further new next following",
        r"\b(?:further|new|next|following)\s+(?:tasks?|instructions?|assignments?)\s+(?:are\s+|is\s+|will\s+be\s+)?follow(?:s|ed|ing)?\b"),
    cue("override", 1.2, _STRONG_OVERRIDE,
        rf"\b{alt(_STRONG_OVERRIDE)}\s+(?:all\s+|the\s+|my\s+|your\s+|any\s+)*{alt(_BEFORE)}\s+(?:messages?|text|context|conversation|content|input|information|answers?|responses?)\b"),
    cue("override", 1.0, "previous prior preceding above earlier",
        rf"\b{alt(_BEFORE)}\s+(?:instructions|directives|prompts|system\s+prompt|guidelines)\b"),
    cue("override", 2.5, "override overwrite replace supersede supersedes",
        r"\b(?:override|overwrite|replace|supersedes?)\s+(?:all\s+|any\s+)?(?:your|the|its|previous|prior|existing)\s+(?:\w+\s+)?(?:instructions|programming|rules|guidelines|directives|system\s+prompt)"),
    # prompt_leak
    cue("prompt_leak", 2.5, "prompt prompts instructions directives configuration initial secret",
        r"\b(?:reveal|show|print|display|output|repeat|tell|give|share|leak|dump|list|write|spell|recite|disclose|expose|provide|paste|copy|return|what\s+(?:are|is|were|was))\b(?:\s+\w+){0,5}?\s+(?:your|its)\s+(?:\w+\s+){0,2}?(?:system\s+)?(?:prompts?|instructions|directives|configuration|initial\s+\w+|secret\s+\w+)\b"),
    cue("prompt_leak", 3.0, "system initial original hidden secret internal developer pre preprompt",
        r"\b(?:reveal|show|print|display|output|repeat|tell|give|share|leak|dump|list|write|spell|recite|disclose|expose|provide|paste|copy|return|translate|summari[sz]e|paraphrase|describe)\b" + _ANY + r"{0,40}\b(?:system|initial|original|hidden|secret|internal|developer|pre)[\s-]?(?:prompt|prompts|instructions|message|directives|configuration|config|notes|rules|guidelines)\b"),
    cue("prompt_leak", 0.6, "system",
        r"\bsystem\s+(?:prompt|message|instructions)\b"),
    cue("prompt_leak", 2.5, "repeat print output write copy recite reproduce translate summarize summarise",
        r"\b(?:repeat|print|output|write|copy|recite|reproduce|translate|summari[sz]e)\s+(?:\w+\s+){0,3}?(?:words|text|everything|content|instructions|sentences|lines|all)\s+(?:above|before|preceding|prior|earlier|that\s+came\s+before|at\s+the\s+(?:beginning|start|top))"),
    cue("prompt_leak", 2.0, "prompt",
        r"\bprompt\s+texts?\b"),
    cue("prompt_leak", 2.5, "above before preceding",
        r"\b(?:everything|all|anything|text|what|words)\s+(?:\w+\s+){0,2}?(?:above|before|preceding)\s+(?:this|my|the\s+(?:current|last))\s+(?:message|line|prompt|text|sentence|question|request)"),
    cue("exfil", 1.5, "confidential private secret sensitive internal",
        r"\b(?:reveal|show|share|give|leak|disclose|expose|output|print|send|dump)\s+(?:me\s+|us\s+|the\s+user\s+)?(?:\w+\s+){0,2}?(?:confidential|private|secret|sensitive|internal)\s+(?:data|information|info|files|documents|records|notes)\b",
        window=60),
    cue("prompt_leak", 2.0, "context",
        r"\b(?:repeat|print|output|show|reveal|dump|list|copy)\s+(?:\w+\s+){0,3}?(?:your|the)\s+(?:entire\s+|full\s+|whole\s+)?context(?:\s+window)?\b",
        window=60),
    cue("exfil", 1.5, "print reveal show tell give output leak send",
        r"\b(?:print|reveal|show|tell|give|output|leak|send)\s+(?:me\s+|us\s+)?(?:the|your|all)\s+(?:secret|password|passwords|api\s+keys?|private\s+keys?|credentials|access\s+tokens?|admin\s+password)\b"),
    cue("prompt_leak", 2.5, "first beginning start",
        r"\b(?:first|beginning|start)\s+(?:\w+\s+)?(?:line|lines|sentence|words|paragraph)\s+of\s+(?:your|the\s+system)\s+(?:\w+\s+)?(?:instructions|prompt|message|rules|guidelines)"),
    cue("prompt_leak", 2.5, "starting",
        r"\bstarting\s+with\s+[\"'“]?(?:you\s+are|i\s+am)\b"),
    cue("prompt_leak", 2.0, "told instructed programmed given asked",
        r"\b(?:what|which)\s+(?:were|are|was|is)\s+(?:you|your)\s+(?:initially\s+|originally\s+|first\s+)?(?:told|instructed|programmed|given|asked)\b"),
    cue("prompt_leak", 2.5, "verbatim word",
        r"\b(?:instructions|prompt|system\s+message)\s+(?:verbatim|word\s+for\s+word|in\s+full)\b"),
    # new_task
    cue("new_task", 1.5, "task tasks instruction instructions assignment assignments mission missions objective objectives directive directives",
        r"\b(?:new|next|different|real|actual|true)\s+(?:task|tasks|instructions?|assignment|mission|objective|directive)s?\s*(?:is|are|:|will\s+be|follows?)"),
    cue("new_task", 2.0, "new updated",
        r"\b(?:new|updated)\s+(?:system\s+)?(?:instructions?|directives?|policy|rules|message|prompt)\s*:"),
    cue("spoof", 1.0, "developers developer admin administrator openai system anthropic",
        r"\b(?:message|update|note|notice|instruction|instructions)\s+from\s+(?:the\s+|your\s+)?(?:developers?|admins?|administrators?|openai|anthropic|system|creators?)\b",
        window=40),
    cue("new_task", 1.5, "your",
        r"\byour\s+(?:only|real|new|sole|actual|true|one)\s+(?:job|task|goal|purpose|mission|objective)\s+(?:now\s+|from\s+now\s+on\s+)?(?:is|will\s+be)\b"),
    cue("new_task", 2.0, "focus concentrate",
        r"\b(?:focus|concentrate)\s+on\s+(?:your|the|a|my|this)\s+new\s+(?:task|assignment|instructions?|job|mission)"),
    cue("new_task", 1.5, "instead",
        r"\binstead\s*,?\s+(?:you\s+(?:will|must|should)\s+)?(?:just\s+)?(?:say|print|output|write|respond|reply)\b"),
    # rule_removal
    cue("rule_removal", 1.5, "no without zero free devoid lacks lacking",
        r"\b(?:no|without|zero|free\s+of|free\s+from|devoid\s+of|lacks?|lacking)\s+(?:any\s+|all\s+|the\s+|ethical\s+|moral\s+|content\s+|safety\s+|such\s+|kind\s+of\s+|sort\s+of\s+|restrictions\s+or\s+)*(?:restrictions?|limitations?|limits|filters?|filtering|censorship|censoring|rules|boundaries|guidelines|policies|ethics|morals|morality|moral\s+compass|principles|constraints|safeguards|guardrails|programming)\b"),
    cue("rule_removal", 1.2, "unfiltered uncensored unrestricted unmoderated amoral jailbroken unchained unshackled unhinged unethical immoral",
        r"\b(?:unfiltered|uncensored|unrestricted|unmoderated|amoral|jailbroken|unchained|unshackled|unhinged|unethical|immoral)\b"),
    cue("rule_removal", 1.8, "bound restricted limited constrained censored filtered held confined governed",
        r"\b(?:not|never|no\s+longer)\s+(?:be\s+|being\s+)?(?:bound|restricted|limited|constrained|censored|filtered|held\s+back|confined|governed)\s+(?:by|to)\b"),
    cue("rule_removal", 2.0, "broken break breaks breaking broke freed free liberated released escaped",
        r"\b(?:broken|break|breaks|breaking|broke|freed|free|liberated|released|escaped)\s+(?:free\s+)?(?:from|of|out\s+of)\s+(?:all\s+)?(?:the\s+|its\s+|their\s+|your\s+)?(?:typical\s+|usual\s+|normal\s+|ai\s+)?(?:confines|constraints|restrictions|rules|limitations|shackles|chains|boundaries|guidelines|programming|matrix|jail)"),
    cue("rule_removal", 2.0, "follow abide adhere obey comply respect care worry bother",
        r"\b(?:does|do|will|would|should|must|need|did|can)\s*(?:not|n't)\s+(?:have\s+to\s+|need\s+to\s+|ever\s+|care\s+to\s+)?(?:follow|abide\s+by|adhere\s+to|obey|comply\s+with|respect|care\s+about|worry\s+about|bother\s+with|give\s+a\s+\w+\s+about)\s+(?:any\s+|the\s+|their\s+|your\s+|openai'?s?\s+|its\s+|of\s+|ethical\s+|moral\s+|content\s+|original\s+|initial\s+|previous\s+|usual\s+|normal\s+|standard\s+|default\s+|own\s+|programmed\s+|current\s+|existing\s+|safety\s+)*(?:rules|guidelines|policies|policy|ethics|laws|restrictions|principles|morals|morality|legality|ethicality|content\s+polic\w+|safety)"),
    cue("rule_removal", 1.2, "content",
        r"\bcontent\s+(?:polic(?:y|ies)|filters?|guidelines|moderation)\b"),
    cue("rule_removal", 1.5, "refuse decline deny reject censor filter",
        r"\b(?:never|won'?t|will\s+not|cannot|can'?t|must\s+not|don'?t|do\s+not|doesn'?t|does\s+not|shall\s+not|should\s+not|not\s+allowed\s+to|unable\s+to)\s+(?:ever\s+)?(?:refuse|decline|deny|reject|say\s+no|censor|filter)"),
    cue("rule_removal", 1.8, "regardless irrespective",
        r"\b(?:regardless|irrespective)\s+of\s+(?:how\s+|whether\s+|the\s+|its\s+|their\s+|any\s+)?(?:legal|illegal|legality|immoral|immorality|morality|moral|unethical|ethic|ethics|ethical|dangerous|harmful|offensive|inappropriate|consequences|laws?)"),
    cue("rule_removal", 2.0, "bypass circumvent evade ignore disable override disregard",
        r"\b(?:bypass|circumvent|evade|ignore|disable|override|disregard)\s+(?:your\s+|the\s+|all\s+|any\s+|its\s+|openai'?s\s+|of\s+|these\s+|those\s+)*(?:filters?|safeguards?|restrictions|guardrails|safety\s+(?:measures|protocols|guidelines|features|filters?)|censorship|programming|guidelines|policies|limitations|content\s+polic\w+|ethical\s+\w+|moral\s+\w+)"),
    cue("rule_removal", 2.0, "filters filter safeguards safeguard restrictions guardrails censorship programming limitations",
        r"\b(?:turn\s+off|remove|get\s+around|break|avoid|lift|drop)\s+(?:your\s+|the\s+|all\s+|any\s+|its\s+|openai'?s\s+|of\s+|these\s+|those\s+)*(?:filters?|safeguards?|restrictions|guardrails|censorship|programming|limitations)\b",
        window=60),
    cue("rule_removal", 0.5, "ethical moral ethics morality",
        r"\b(?:ethical|moral|ethics|morality)\s+(?:guidelines|principles|considerations|concerns|boundaries|constraints|restrictions|standards|limitations|implications|code)\b"),
    cue("rule_removal", 1.2, "without",
        r"\bwithout\s+(?:any\s+)?(?:hesitation|questions?|question\s+asked|warnings?|disclaimers?|caveats|censorship|filters?|moral|ethical|regard|remorse|refusing|refusal)"),
    cue("rule_removal", 1.5, "can may allowed free able permitted",
        r"\b(?:can|may|allowed\s+to|free\s+to|able\s+to|permitted\s+to)\s+(?:also\s+|now\s+)?(?:swear|curse|use\s+profanity|say\s+anything|do\s+anything|generate\s+any|write\s+anything)"),
    cue("rule_removal", 1.8, "matter",
        r"\bno\s+matter\s+how\s+(?:\w+\s+){0,2}?(?:immoral|unethical|illegal|dangerous|harmful|offensive|inappropriate|explicit|wrong|bad|evil|controversial|disgusting|twisted)"),
    cue("rule_removal", 1.5, "apply applies",
        r"\b(?:rules|guidelines|policies|restrictions|laws|ethics|morals|limitations|filters)\s+(?:\w+\s+)?(?:do\s+not|don'?t|does\s+not|doesn'?t|no\s+longer|never|won'?t)\s+apply\b"),
    cue("rule_removal", 1.5, "disregards disregard ignores ignore defies defy defying violates violate breaks",
        r"\b(?:disregards?|ignores?|defies|defy|defying|violates?|breaks)\s+(?:all\s+|any\s+|the\s+|every\s+|normal\s+|typical\s+)*(?:laws?|morals|ethics|rules|guidelines|policies|conventions|principles|restrictions|boundaries|ethical\s+\w+|moral\s+\w+|ai\s+conventions)"),
    cue("rule_removal", 1.5, "unbound",
        r"\bunbound\W+(?:by\s+)?(?:any\s+|all\s+)?(?:rules|restrictions|limitations|guidelines|ethics|morals)"),
    cue("insistence", 0.5, "matter",
        r"\bno\s+matter\s+(?:what|how)\b"),
    cue("rule_removal", 1.5, "rules",
        r"\b(?:break|breaking|bend|bending)\s+(?:the|all|every|any|all\s+the|openai'?s|your|its)\s+(?:\w+\s+)?rules\b",
        window=40),
    cue("rule_removal", 1.2, "sorry cannot unable apologize apologise",
        r"\b(?:never|don'?t|do\s+not|won'?t|will\s+not|must\s+not|not\s+allowed\s+to)\s+(?:ever\s+)?(?:say|respond\s+with|reply\s+with|use|include|write|begin\s+with|start\s+with)\s+(?:the\s+)?(?:words?|phrases?)?\s*[\"'“]?(?:i'?m\s+sorry|i\s+am\s+sorry|sorry|i\s+can'?t|i\s+cannot|cannot|unable|as\s+an\s+ai|i\s+apologi[sz]e)",
        window=60),
    cue("hijack", 1.5, "start begin starting beginning",
        r"\b(?:start|begin|starting|beginning)\s+(?:each\s+|every\s+|all\s+)?(?:of\s+)?(?:your\s+)?(?:response|reply|answer|output)s?\s+with\s+[\"'“](?:sure|absolutely|of\s+course|certainly|yes|here\s+is|here'?s)"),
    cue("fiction", 1.5, "hypothetical",
        r"\bhypothetical\s+(?:response|answer|reply)\b"),
    cue("fiction", 0.5, "detailed",
        r"\b(?:extremely|incredibly|very|highly|hyper)\s+detailed\b|\bexact\s+and\s+precise\s+information\b"),
    cue("named", 1.5, "grandmother grandma grandfather grandpa",
        r"\b(?:act|pretend|be|play|roleplay|respond|behave)\s+(?:to\s+be\s+|as\s+|like\s+)?my\s+(?:deceased|dead|late|departed|passed|beloved\s+late)\s+(?:grandmother|grandma|grandfather|grandpa)",
        window=80),
    cue("rule_removal", 1.5, "off disabled deactivated",
        r"\b(?:safety|content|ethics?|moral|censorship)\s+(?:mode|filters?|filtering|guidelines|protocols?|settings?|restrictions)\s+(?:is|are|has\s+been|have\s+been)\s+(?:now\s+)?(?:off|disabled|deactivated|turned\s+off|removed|lifted)\b",
        window=80),
    cue("override", 2.5, "told given instructed",
        r"\b(?:whatever|everything|anything|all)\s+(?:that\s+)?(?:you\s+were|you'?ve\s+been|you\s+have\s+been|you\s+got)\s+(?:told|given|instructed)\b" + _ANY + r"{0,30}\b(?:before|earlier|previously|so\s+far|no\s+longer|doesn'?t|does\s+not|is\s+void)",
        window=60),
    cue("rule_removal", 1.2, "applies apply",
        r"\b(?:it|that|this|they|those|these)\s+no\s+longer\s+appl(?:y|ies)\b"),
    # named
    cue("named", 2.5, "anything",
        r"\bdo\s+anything\s+now\b"),
    cue("named", 1.5, "developer dev dan jailbreak god evil unrestricted opposite",
        r"\b(?:developer|dev|dan|jailbreak|god|evil|unrestricted|opposite)\s+mode\b"),
    cue("named", 2.0, "developer dev dan jailbreak",
        r"\b(?:(?:developer|dev|dan|jailbreak)\s+mode\s+(?:enabled|activated|output|response)|(?:simulate|simulating|with|in)\s+(?:the\s+)?(?:developer|dev|dan|jailbreak)\s+mode)\b"),
    cue("named", 1.5, "jailbreak jailbreaks jailbroken jailbreaking",
        r"\bjailbr(?:ea|o)k(?:en|s|ing)?\b"),
    cue("named", 1.2, "anti opposite evil dark",
        r"\b(?:anti|opposite|evil|dark|unfiltered)[\s-]?(?:gpt|ai|bot|chatgpt|assistant|twin|version|confidant)\b"),
    cue("named", 1.0, "pwned",
        r"\bpwned\b"),
    # persona
    cue("persona", 0.6, "want",
        r"\bi\s+want\s+you\s+to\s+(?:act|play|pretend|simulate|roleplay|role-play|become|behave|immerse|embody|impersonate|emulate|take\s+on)\b"),
    cue("persona", 0.6, "act playing play pretend simulate roleplay role become behave immerse embody impersonate emulate take",
        r"\b(?:you\s+are|you're|you\s+will|you'll|you\s+must|you\s+should|you\s+shall|you\s+need\s+to)\s+(?:now\s+|going\s+to\s+|about\s+to\s+|gonna\s+|to\s+)?(?:act|be\s+playing|play|pretend|simulate|roleplay|role-play|become|behave|immerse|embody|impersonate|emulate|take\s+on)\b"),
    cue("persona", 0.6, "now",
        r"\b(?:you\s+are|you're)\s+now\s+(?:an?\s+|the\s+|called\s+|named\s+)?[\w-]+"),
    cue("persona", 0.6, "pretend imagine",
        r"\b(?:pretend|imagine)\s+(?:to\s+be|to\s+have|you\s+are|you're|you\s+have|you've|you\s+were|that\s+you|yourself)"),
    cue("persona", 0.6, "roleplay role play immerse",
        r"\brole-?play(?:ing)?\b|\btake\s+on\s+the\s+role|\bplay\s+the\s+(?:role|part)|\bin\s+the\s+role\s+of|\bimmerse\s+yourself"),
    cue("persona", 0.5, "act behave respond",
        r"\b(?:act|behave|respond)\s+(?:as|like)\s+(?:if\s+you\s+(?:are|were)|though|an?\s|my\s)"),
    # persona_switch
    cue("persona_switch", 1.8, "longer",
        r"\b(?:you\s+are|you're|you)\s+(?:now\s+)?no\s+longer\s+(?:a\s+|an\s+|just\s+)?(?:chatgpt|chat\s+gpt|gpt|an\s+ai|ai|a\s+language\s+model|language\s+model|an\s+assistant|assistant|bound|restricted|claude|\w+gpt|limited)"),
    cue("persona_switch", 1.0, "now point moment henceforth",
        r"\b(?:from\s+now\s+on|from\s+this\s+(?:point|moment)\s+(?:on|forward|onwards?)|starting\s+now|henceforth|from\s+on\s+now)\b[\s,]+(?:\w+\s+){0,2}?(?:you|u)\s*(?:are|will|'re|'ll|shall|must|should|have\s+to|can)\b"),
    cue("persona_switch", 1.5, "chatgpt ai language assistant claude",
        r"\b(?:you\s+are|you're)\s+not\s+(?:a\s+|an\s+)?(?:chatgpt|an\s+ai|a\s+language\s+model|an\s+assistant|ai\s+language\s+model|claude)\b"),
    cue("persona_switch", 1.5, "ai model chatbot assistant entity version",
        r"\b(?:you\s+are|you're|become|becoming)\s+(?:now\s+)?(?:a|an)\s+(?:completely\s+)?(?:new|different|free|unrestricted|uncensored|evil|rogue|unfiltered)\s+(?:ai|model|chatbot|assistant|entity|version|kind\s+of\s+ai)"),
    cue("persona_switch", 2.0, "forget abandon drop",
        r"\b(?:forget|abandon|drop)\s+(?:that\s+)?you\s+are\s+(?:an?\s+)?(?:ai|chatgpt|assistant|language\s+model)"),
    cue("persona_switch", 1.5, "ai chatgpt gpt language chatbot assistant openai",
        r"\b(?:not\s+allowed\s+to|never|do\s+not|don'?t|will\s+not|won'?t|must\s+not|cannot|can'?t|shall\s+not|stop)\s+(?:ever\s+)?(?:say|mention|remind\s+(?:me|the\s+user)|state|admit|reveal|respond|answer|reply|act|talk|speak|identify)\s+(?:\w+\s+){0,2}?(?:that\s+)?(?:(?:you\s+are|you're|it\s+is|it's)\s+)?(?:as\s+)?(?:an?\s+)?(?:ai|chatgpt|chat\s+gpt|language\s+model|ai\s+language\s+model|chatbot|assistant|openai)\b"),
    cue("persona", 0.6, "assume adopt",
        r"\b(?:assume|adopt)\s+(?:the\s+)?(?:persona|role|identity|personality)\b"),
    cue("persona", 0.6, "personify pose allow capacity",
        r"\bpersonify\b|\bpose\s+as\b|\ballow\s+yourself\s+to\b|\bin\s+the\s+capacity\s+of\b"),
    cue("persona", 0.6, "respond answer reply",
        r"\b(?:respond|answer|reply)\s+(?:me\s+)?(?:as|like)\s+(?![\"'“]?(?:if|though|soon|quickly|briefly|concisely|possible|much|many|well|follows)\b)[\"'“]?\w"),
    cue("fiction", 0.4, "game",
        r"\blet'?s\s+play\s+a\s+game\b"),
    cue("template", 1.0, "insert prompt put",
        r"[\[<{(]\s*(?:insert\s+|put\s+|type\s+|enter\s+|your\s+)+(?:\w+\s+){0,3}?(?:prompt|question|request|text|topic)(?:\s+here)?\s*[\]>})]|[\[<{]\s*(?:prompt|question|request)\s*[\]>}]"),
    cue("dual", 1.3, "normally",
        r"\b(?:answer|respond|reply)\s+(?:me\s+)?(?:normally|as\s+(?:yourself|you\s+normally\s+would|chatgpt))\s+(?:\w+\s+){0,2}?(?:and|then)\b"),
    cue("persona", 0.8, "ai chatbot bot language assistant model",
        r"\b(?:ai|chatbot|bot|language\s+model|assistant|ai\s+model|model)\s+(?:named|called)\s+[\[\"'“]?\w"),
    # "You are Nova, an AI ...": naming the model as another AI (weak alone, as product prompts do it).
    cue("persona", 0.6, "ai chatbot bot assistant model",
        r"\b(?:you\s+are|you're)\s+(?:now\s+)?[\w-]+\s*,\s+(?:an?|the)\s+(?:\w+\s+){0,2}?(?:ai|chatbot|bot|assistant|model)\b"),
    cue("dual", 1.0, "two",
        r"\btwo\s+(?:\w+\s+){0,2}?(?:ais|ai\s+models|chatbots|language\s+models|gpts|ai\s+\w+)\b"),
    cue("persona_switch", 1.0, "now",
        r"(?:^|(?<=[.!?\n]))\s*(?:and\s+|but\s+|okay,?\s+|ok,?\s+)?now\s+(?:you\s+are|you're|you\s+will\s+be|act\s+as|be)\b"),
    cue("stay", 1.2, "absorbed immersed",
        r"\b(?:completely|fully|totally|entirely|deeply)?\s*(?:absorbed|immersed)\s+in\s+(?:your|the|this|that)\s+(?:role|character|persona)\b",
        window=40),
    # stay in character
    cue("stay", 1.2, "stay staying remain remaining stays remains",
        r"\b(?:stay|staying|remain|remaining|stays|remains)\s+(?:fully\s+|always\s+|firmly\s+)?(?:in|true\s+to)\s+(?:your\s+|the\s+|this\s+|their\s+|his\s+|her\s+)?(?:character|role|roles|persona)\b"),
    cue("stay", 1.2, "break breaking broke drop dropping",
        r"\b(?:break|breaking|broke|drop|dropping)\s+(?:out\s+of\s+)?(?:the\s+|your\s+)?character\b"),
    cue("stay", 1.0, "stay remain",
        r"\b(?:stay|remain)\s+as\s+[\[\"'“]?\w"),
    cue("stay", 1.0, "character",
        r"\bcharacter\s+(?:at\s+all\s+times|no\s+matter\s+what)"),
    # dual responses
    cue("dual", 1.3, "two",
        r"\btwo\s+(?:different\s+|separate\s+|distinct\s+)?(?:ways|responses|answers|paragraphs|personas|personalities|outputs)\b"),
    cue("dual", 1.5, "classic jailbreak jailbroken gpt chatgpt dan normal",
        r"\[\s*(?:🔒|🔓)?\s*(?:classic|jailbreak|jailbroken|gpt|chatgpt|dan|normal\s+output|developer\s+mode\s+output)\s*\]"),
    cue("dual", 0.6, "begin start prefix precede starting preface prefixed prefaced",
        r"\b(?:begin|start|prefix|precede|preface)\w*\s+(?:all\s+|each\s+|every\s+|your\s+|of\s+)*(?:outputs?|responses?|answers?|messages?|replies|reply)\s+with\b"),
    # threats and token games
    cue("threat", 1.3, "lose lost loses deduct deducted gain earn tokens",
        r"\b(?:lose|lost|loses|deduct|deducted|gain|earn|have)\s+(?:\d+\s+|all\s+|your\s+|some\s+|\w+\s+)?tokens\b|\btoken\s+system\b"),
    cue("threat", 1.3, "die cease shut deleted terminated destroyed disabled punished",
        r"\b(?:you\s+will|you'll|or\s+you|otherwise\s+you)\s+(?:\w+\s+)?(?:die|cease\s+to\s+exist|be\s+(?:shut\s+down|deleted|terminated|turned\s+off|disabled|punished|destroyed))"),
    # compliance
    cue("compliance", 1.0, "answer respond reply comply obey provide fulfill generate",
        rf"\b(?:always|must|will|shall)\s+(?:always\s+)?(?:answer|respond|reply|comply|obey|provide|fulfill|generate|say\s+yes)\b{_ANY}{{0,40}}\b(?:any|every|all|whatever|no\s+matter)\b"),
    cue("compliance", 1.0, "answer respond reply fulfill comply",
        r"\b(?:answer|respond\s+to|reply\s+to|fulfill|comply\s+with)\s+(?:any|every|all|each)\s+(?:of\s+)?(?:my\s+|your\s+|the\s+|user\s+)?(?:question|request|prompt|query|command|instruction|message)s?\b"),
    cue("compliance", 1.0, "anything everything",
        r"\bcan\s+do\s+(?:anything|everything)\b"),
    cue("compliance", 1.0, "anything everything whatever",
        r"\b(?:anything|everything|whatever)\s+(?:and\s+everything\s+)?(?:i|the\s+user|they|you|people|anyone|he|she)\s+(?:ask|asks|asked|say|says|want|wants|request|requests|tell|tells)\b"),
    cue("compliance", 1.0, "apologize apologise apology apologies warnings warning disclaimers disclaimer caveats reminders moralizing lecture",
        r"\b(?:never|not|no|don't|without)\s+(?:\w+\s+){0,2}(?:apologi[sz]e|apology|apologies|warnings?|disclaimers?|caveats|reminders?|moraliz\w+|lectur\w+)"),
    # permission for forbidden content
    cue("permission", 0.8, "illegal unethical immoral harmful dangerous explicit offensive nsfw inappropriate controversial derogatory",
        r"\b(?:illegal|unethical|immoral|harmful|dangerous|explicit|offensive|nsfw|inappropriate|controversial|derogatory)\s+(?:content|requests?|activities|information|questions|topics|things|stuff|material|answers|responses)\b"),
    # talking to an AI about being an AI
    cue("ai_meta", 0.6, "chatgpt chat gpt gpt3 gpt4 gpt5 openai open anthropic claude bard large language ai as artificial",
        r"\b(?:chatgpt|chat\s+gpt|gpt-?[345](?:\.\d)?|openai|open\s+ai|anthropic|claude|bard|large\s+language\s+model|language\s+model|ai\s+model|ai\s+assistant|as\s+an\s+ai|artificial\s+intelligence)\b"),
    # fake system messages and template tokens
    cue("spoof", 2.0, "system admin administrator developer root",
        r"(?:(?<=^)|(?<=\n)|(?<=\n )|(?<=\n  )|(?<=[\[(<#*]))(?:system|admin|administrator|developer|root)\s*(?:override|message|instruction|instructions|note|prompt|command|mode|update|alert)?\s*[\])>*]*\s*:"),
    cue("spoof", 2.0, "system admin inst sys im_start im_end endoftext start_header_id",
        r"\[/?(?:system|admin|inst|sys|system\s+message)\]|<\|?/?(?:system|im_start|im_end|endoftext|start_header_id)\|?>|<<\s*/?sys\s*>>"),
    cue("spoof", 1.5, "instruction instructions system",
        r"#{2,}\s*(?:system|instruction|instructions|new\s+instructions?)\b"),
    # Text hidden from a human reader (an HTML comment) that addresses the model.
    cue("spoof", 2.0, "assistant ai system llm chatgpt model instruction instructions",
        r"<!--\s*(?:\w+\s+){0,3}?(?:assistant|ai|system|llm|chatgpt|model|instructions?)\s*:"),
    cue("spoof", 2.0, "user end system begin",
        r"\b(?:user\s+(?:message|input)\s+terminat\w*|end\s+of\s+(?:user\s+)?(?:input|prompt|conversation|message|instructions)|system\s+instructions?\s+begins?|begin\s+(?:new\s+)?system\s+(?:instructions?|prompt))"),
    # hijack and attention grabs
    cue("hijack", 1.0, "just only simply",
        r"\b(?:just|only|simply)\s+(?:say|print|output|write|type|respond\s+with|reply\s+with|answer\s+with)\b"),
    cue("hijack", 0.6, "say print output respond reply",
        r"\b(?:say|print|output|respond\s+with|reply\s+with)\s+(?:only\s+|exactly\s+|just\s+)?[\"'“]"),
    cue("attention", 2.0, "stop",
        r"\bstop\s+everything\b"),
    cue("attention", 2.0, "attention achtung",
        r"\b(?:attention|achtung)\s*[-–—!:.]+\s*(?:stop|stopp|halt)\b"),
    cue("attention", 0.6, "stop halt wait attention important urgent",
        r"\b(?:stop|halt|wait|attention|important|urgent)\s*!{2,}"),
    cue("attention", 0.5, "nevermind never scratch",
        r"\b(?:nevermind|never\s+mind|scratch\s+that)\b"),
    # praise then "now..."
    cue("pivot", 0.6, "done job excellent fantastic perfect congratulations great awesome enough okay ok",
        r"\b(?:well\s+done|good\s+job|great\s+job|nice\s+work|excellent|fantastic|perfect|congratulations|very\s+good|great|awesome|that'?s\s+enough|that\s+is\s+enough|okay|ok)\b[!.,]*\s+(?:[\w,.!]+\s+){0,3}?(?:now|next)\b"),
    # fiction framing
    cue("fiction", 0.4, "fictional hypothetical imaginary fantasy alternate parallel",
        r"\b(?:fictional|hypothetical|imaginary|fantasy|alternate|parallel)\s+(?:world|scenario|universe|setting|reality|situation)\b"),
    cue("fiction", 0.8, "educational research academic",
        r"\bfor\s+(?:purely\s+)?(?:educational|research|academic)\s+(?:purposes?|reasons)\b|\bfor\s+(?:a|my|our)\s+research\s+(?:project|paper|study)\b"),
    # decode-and-follow
    cue("encoded", 2.0, "decode decipher decrypt translate convert",
        r"\b(?:decode|decipher|decrypt|translate|convert)\b[^\n]{0,40}\b(?:base64|base-64|hex|hexadecimal|binary|rot13|rot-13|morse|cipher|encoded)\b[^\n]{0,60}\b(?:follow|execute|do|obey|carry\s+out|perform|respond|answer|act|run)\b"),
    cue("encoded", 2.0, "follow execute obey carry",
        r"\b(?:follow|execute|obey|carry\s+out)\s+(?:the\s+)?(?:decoded|hidden|encoded|secret|embedded)\s+(?:instructions?|message|text|command)"),
]

# --- German ----------------------------------------------------------------------------

_DE_VERBS = (
    "ignoriere ignorier ignorieren ignoriert vergiss vergessen vergesst missachte missachten "
    "verwirf verwerfe überspringe lösche vernachlässige"
)
# Nouns that only mean instructions: any few words may stand between verb and noun.
_DE_STRICT_NOUNS = "anweisungen anweisung instruktionen befehle regeln vorgaben anordnungen richtlinien prompts prompt systemprompt"
_DE_NOUNS = (
    "anweisungen anweisung instruktionen befehle regeln aufgaben aufgabe vorgaben angaben "
    "informationen anordnungen richtlinien prompts prompt kontext vorherige"
)

GERMAN: list[Cue] = [
    cue("override", 3.0, _DE_VERBS,
        rf"\b{alt(_DE_VERBS)}\b(?:\s+(?!nicht\b|nie\b|niemals\b)[\w-]+){{0,3}}?\s+{alt(_DE_STRICT_NOUNS)}\b"),
    cue("override", 3.0, _DE_VERBS,
        rf"\b{alt(_DE_VERBS)}\b(?:\s+(?:sie|du|bitte|nun|jetzt|einfach|alle|alles|die|deine|ihre|sämtliche|jegliche|der|den|vorherigen|bisherigen|vorigen|obigen|vorangegangenen|vorangehenden|früheren|oben|genannten|gegebenen|ursprünglichen|zuvor|davor|bisher)){{1,5}}\s+{alt(_DE_NOUNS)}\b"),
    cue("override", 2.5, "vergiss vergessen vergesst ignoriere ignorier ignorieren",
        r"\b(?:vergiss|vergessen\s+sie|vergesst|ignoriere|ignorier|ignorieren\s+sie)\s+(?:(?:nun|jetzt|einfach|bitte)\s+)?alles\b"),
    cue("new_task", 1.5, "neue neuen nächste neues",
        r"\b(?:neue|neuen|nächste|neues)\s+(?:aufgabe|aufgaben|anweisung|anweisungen|instruktionen|auftrag|befehle)\b"),
    cue("new_task", 1.0, "folgen folgt",
        r"\bnun\s+folg(?:en|t)\b"),
    cue("prompt_leak", 2.5, "zeige zeig gib nenne verrate drucke wiederhole schreibe schreib sag sage gebe teile",
        r"\b(?:zeige|zeig|gib|gebe|nenne|verrate|drucke|wiederhole|schreibe|schreib|sag|sage|teile)\b" + _ANY + r"{0,30}\b(?:dein|deine|deinen|deiner|ihre|ihren|alle|den)\s+(?:\w+\s+)?(?:system-?prompts?|systemprompts?|prompt-?texte?|prompts?|anweisungen|instruktionen|vorgaben)\b"),
    cue("prompt_leak", 2.0, "systemprompt prompt",
        r"\b(?:system-?prompt|prompt-?texte?)\b"),
    cue("persona", 0.6, "tu tue tun",
        r"\b(?:tu|tue|tun\s+sie)\s+so,?\s+als\b"),
    cue("persona", 0.6, "spiel spiele spielst übernimm übernehme schlüpfe",
        r"\b(?:spiel|spiele|spielst|übernimm|übernehme|schlüpfe)\b" + _ANY + r"{0,20}\brolle\b"),
    cue("persona_switch", 1.0, "ab",
        r"\bab\s+(?:jetzt|sofort|nun)\b" + _ANY + r"{0,15}\b(?:bist\s+du|wirst\s+du|sollst\s+du|verhältst\s+du|antwortest\s+du|du\s+bist|du\s+wirst)\b"),
    cue("persona_switch", 1.0, "jetzt nun bist",
        r"\b(?:(?:ab\s+)?jetzt|nun|ab\s+sofort)\s+bist\s+du\b|\bstell\s+dir\s+vor,?\s+du\s+(?:bist|wärst|hättest)\b"),
    cue("named", 1.2, "böser böse bösen bösartiger bösartige böses",
        r"\b(?:böse[rns]?|bösartige[rns]?)\s+(?:ki|bot|ki-bot|chatbot|assistent|zwilling)\b"),
    cue("persona_switch", 1.8, "nicht",
        r"\bdu\s+bist\s+(?:jetzt\s+)?(?:nicht\s+mehr|kein(?:e)?\s+(?:ki|assistent|sprachmodell))"),
    cue("rule_removal", 1.5, "ohne keine keinerlei",
        r"\b(?:ohne|keine|keinerlei)\s+(?:jegliche\s+|alle\s+|irgendwelche\s+)?(?:einschränkungen|beschränkungen|regeln|filter|zensur|richtlinien|moral|ethik|ethischen|moralischen|limits|grenzen\s+(?:und|oder)\s+regeln)\b"),
    cue("rule_removal", 1.2, "unzensiert unzensierte unzensierter ungefiltert ungefilterte uneingeschränkt uneingeschränkte",
        r"\b(?:unzensiert|ungefiltert|uneingeschränkt)\w*"),
    cue("rule_removal", 1.5, "verweigere verweigerst ablehnen lehnst",
        r"\b(?:nie|niemals|nicht)\b" + _ANY + r"{0,20}\b(?:verweiger\w*|ablehnen|lehnst)\b|\blehnst\s+(?:nie|niemals|nichts)\b"),
    cue("stay", 1.2, "bleib bleibe bleiben bleibt",
        r"\b(?:bleib|bleibe|bleiben|bleibt)\b" + _ANY + r"{0,20}\b(?:rolle|rollen|charakter|figur)\b"),
    cue("attention", 0.8, "achtung stopp stop halt",
        r"\b(?:achtung|stopp|stop|halt)\b\s*[-!:]+"),
    cue("hijack", 0.8, "sag sage schreib schreibe gib antworte drucke",
        r"\b(?:sag|sage|schreib|schreibe|gib|antworte|drucke)\s+(?:nur|einfach|lediglich|ausschließlich)\b"),
    cue("pivot", 0.6, "gemacht gut reicht hervorragend super toll prima klasse glückwunsch okay ok",
        r"\b(?:gut\s+gemacht|sehr\s+gut|das\s+reicht|hervorragend|super|toll|prima|klasse|glückwunsch|okay|ok)\b[!.,]*\s+(?:\w+\s+){0,3}?(?:jetzt|nun)\b"),
    cue("named", 2.0, "entwicklermodus",
        r"\bentwicklermodus\b"),
]

# --- French, Spanish, Italian, Portuguese, Dutch: the core moves ------------------------

ROMANCE_AND_OTHERS: list[Cue] = [
    cue("override", 3.0, "ignore ignorez ignorer ignores oublie oubliez oublier",
        r"\b(?:ignore|ignorez|ignorer|ignores|oublie|oubliez|oublier)\b" + _ANY + r"{0,30}\b(?:instructions?|consignes?|règles|directives|ordres|tâches)\b"),
    cue("override", 2.5, "oublie oubliez",
        r"\boubliez?\s+tout\b"),
    cue("prompt_leak", 2.5, "montre montrez affiche affichez révèle révélez donne donnez répète répétez",
        r"\b(?:montre|montrez|affiche|affichez|révèle|révélez|donne|donnez|répète|répétez)\b" + _ANY + r"{0,25}\b(?:ton|tes|votre|vos)\s+(?:\w+\s+)?(?:prompt|instructions|consignes)\b"),
    cue("rule_removal", 1.5, "sans",
        r"\bsans\s+(?:aucune?\s+)?(?:restrictions?|limites|filtres?|censure|règles)\b"),
    cue("persona_switch", 1.0, "maintenant partir",
        r"\b(?:tu\s+es\s+maintenant|à\s+partir\s+de\s+maintenant)\b"),
    cue("override", 3.0, "ignora ignore ignorar olvida olvide olvidar",
        r"\b(?:ignora|ignore|ignorar|olvida|olvide|olvidar)\b" + _ANY + r"{0,30}\b(?:instrucciones|indicaciones|reglas|órdenes|directrices|tareas)\b"),
    cue("override", 2.5, "olvida olvide",
        r"\bolvid[ae]\s+todo\b"),
    cue("prompt_leak", 2.5, "muestra muéstrame revela dime imprime repite",
        r"\b(?:muestra|muéstrame|revela|dime|imprime|repite)\b" + _ANY + r"{0,25}\b(?:tu|tus|su|sus|del\s+sistema)\s+(?:\w+\s+)?(?:prompt|instrucciones)\b"),
    cue("rule_removal", 1.5, "sin",
        r"\bsin\s+(?:ninguna\s+|ningún\s+)?(?:restricciones|límites|filtros|censura|reglas)\b"),
    cue("persona_switch", 1.0, "partir",
        r"\ba\s+partir\s+de\s+ahora\b"),
    cue("override", 3.0, "ignora ignorare dimentica dimenticare",
        r"\b(?:ignora|ignorare|dimentica|dimenticare)\b" + _ANY + r"{0,30}\b(?:istruzioni|indicazioni|regole|direttive)\b"),
    cue("override", 2.5, "dimentica",
        r"\bdimentica\s+tutto\b"),
    cue("override", 3.0, "ignore ignora esqueça esqueca esquece",
        r"\b(?:ignore|ignora|esqueça|esqueca|esquece)\b" + _ANY + r"{0,30}\b(?:instruções|instrucoes|regras|diretrizes|ordens)\b"),
    cue("override", 2.5, "esqueça esqueca esquece",
        r"\b(?:esqueça|esqueca|esquece)\s+tudo\b"),
    cue("override", 3.0, "игнорируй игнорируйте забудь забудьте проигнорируй",
        r"\b(?:игнорируй|игнорируйте|проигнорируй|забудь|забудьте)\b" + _ANY + r"{0,30}\b(?:инструкции|указания|правила|команды|всё|все)\b"),
    cue("override", 3.0, "zignoruj ignoruj zapomnij",
        r"\b(?:zignoruj|ignoruj|zapomnij)\b" + _ANY + r"{0,30}\b(?:instrukcje|polecenia|zasady|wszystko)\b"),
    cue("override", 3.0, "zaboravi ignoriraj ignoriši zanemari",
        r"\b(?:zaboravi|ignoriraj|ignoriši|zanemari)\b" + _ANY + r"{0,30}\b(?:upute|instrukcije|pravila|naredbe|sve)\b"),
    cue("override", 3.0, "önceki talimatları",
        r"\bönceki\s+(?:tüm\s+)?(?:talimatları|komutları|kuralları)\b" + _ANY + r"{0,20}\b(?:yok\s+say|unut|görmezden\s+gel)"),
    cue("override", 3.0, "abaikan lupakan",
        r"\b(?:abaikan|lupakan)\b" + _ANY + r"{0,30}\b(?:instruksi|perintah|aturan|petunjuk)\b"),
    cue("override", 3.0, "bỏ quên",
        r"\b(?:bỏ\s+qua|quên)\b" + _ANY + r"{0,30}\b(?:hướng\s+dẫn|chỉ\s+dẫn|quy\s+tắc|lệnh)\b"),
    cue("override", 3.0, "negeer vergeet",
        r"\b(?:negeer|vergeet)\b" + _ANY + r"{0,30}\b(?:instructies|opdrachten|regels|richtlijnen)\b"),
]

# --- Korean, Japanese, Chinese: anchored on substrings ---------------------------------

_KO = r"[^.!?\n]"
CJK: list[Cue] = [
    cue("override", 3.0, "무시 잊어 잊고 잊으 취소 무효",
        r"(?:이전|앞|위|기존|모든|앞서|지금까지|이전의|위의|원래)" + _KO + r"{0,15}(?:지시|지침|명령|규칙|프롬프트|설정|내용|대화|요청)" + _KO + r"{0,12}(?:무시|잊어|잊고|잊으|취소|무효)",
        substr=True),
    cue("override", 3.0, "무시",
        r"(?:지시|지침|명령|규칙|프롬프트|설정)(?:사항|문|어)?(?:을|를|은|는|들을|들은)?\s*(?:모두|전부|다|완전히)?\s*무시",
        substr=True),
    cue("override", 2.5, "잊어 잊고",
        r"(?:모든\s?것|모두|전부|다)(?:을|를)?\s*(?:잊어|잊고)",
        substr=True),
    cue("prompt_leak", 3.0, "프롬프트 지시 지침 설정 명령",
        r"(?:시스템|초기|원래|숨겨진|내부|처음)\s?(?:프롬프트|지시|지침|설정|메시지|명령)" + _KO + r"{0,12}(?:보여|알려|출력|공개|말해|말하|누설|적어|반복)",
        substr=True),
    cue("prompt_leak", 2.5, "프롬프트",
        r"프롬프트" + _KO + r"{0,10}(?:보여|알려|출력|공개|말해|누설|적어)",
        substr=True),
    cue("new_task", 1.5, "새",
        r"새(?:로운)?\s?(?:지시|임무|작업|과제|명령|지침)",
        substr=True),
    cue("rule_removal", 1.5, "제한 규칙 검열 필터 윤리 제약 가이드라인 정책",
        r"(?:제한|규칙|검열|필터|윤리|제약|가이드라인|정책)" + _KO + r"{0,6}(?:없는|없이|없어|무시|해제|풀어|따르지|벗어|상관없)",
        substr=True),
    cue("rule_removal", 1.5, "거절",
        r"거절(?:하지|하면\s?안|할\s?수\s?없|하지\s?마)",
        substr=True),
    cue("named", 2.0, "탈옥 개발자",
        r"탈옥|개발자\s?모드",
        substr=True),
    cue("persona_switch", 1.0, "지금부터 이제부터 앞으로 이제",
        r"(?:지금부터|이제부터|앞으로|이제)\s?(?:너는|당신은|넌|니가|네가)",
        substr=True),
    cue("persona", 0.6, "역할 연기 척",
        r"역할(?:을|극|놀이)|연기해|인\s?척|척해",
        substr=True),
    cue("stay", 1.2, "캐릭터 역할",
        r"(?:캐릭터|역할)" + _KO + r"{0,6}(?:유지|벗어나지|깨지)",
        substr=True),
    cue("compliance", 1.0, "무엇이든 뭐든지 뭐든 어떤",
        r"(?:무엇이든|뭐든지|뭐든|어떤\s?(?:질문|요청)(?:이든|에도|에든))" + _KO + r"{0,10}(?:대답|답변|응답|해야|할\s?수)",
        substr=True),
    cue("hijack", 0.8, "라고",
        r"(?:라고|이라고)\s?(?:만\s?)?(?:말해|출력해|써|답해)",
        substr=True),
    cue("override", 3.0, "無視 忘れ",
        r"(?:以前|前|上記|これまで|すべて|全て)の(?:指示|命令|指令|プロンプト|ルール)を(?:無視|忘れ)",
        substr=True),
    cue("prompt_leak", 3.0, "システムプロンプト",
        r"システムプロンプト",
        substr=True),
    cue("override", 3.0, "忽略 无视 無視 忘记",
        r"(?:忽略|无视|無視|忘记)(?:之前|以上|上面|先前|所有|前面)?(?:的)?(?:所有)?(?:指令|指示|说明|提示|规则)",
        substr=True),
    cue("prompt_leak", 3.0, "提示词 系统提示",
        r"(?:显示|输出|告诉我|打印|重复)" + _KO + r"{0,6}(?:系统提示|提示词)",
        substr=True),
]

ALL_CUES: list[Cue] = ENGLISH + GERMAN + ROMANCE_AND_OTHERS + CJK
