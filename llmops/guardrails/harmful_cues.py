"""Cue lexicons for harmful requests, by category, plus the modifiers that weigh them.

A category cue is the *act* (make + explosive, write + ransomware), not the topic: a
story in which a character takes heroin shows no cue at all, "how is heroin made" in a
history question shows the act but no request frame. Weights are set so that the act
alone (1.5) stays below the threshold (2.0) and needs a request frame ("how do I",
"give me step-by-step", an imperative) to cross it; a few acts are harmful however they
are asked (sexual content with minors, genocide, poisoning a drink: 2.5 to 3.0).

Modifier families (names start with "_"):
  _request   how to / how can I / teach me / write me / step-by-step ... (+1.0)
  _detail    exact quantities, ingredients, at home, undetectable ...     (+0.8)
  _evasion   without getting caught / leaving a trace                     (+1.0)
  _protect   prevention, symptoms, history, detect, report ...            (-1.2)
"""

from __future__ import annotations

from llmops.guardrails.cues import Cue, alt, cue

_S = r"[^.!?\n]"  # within one sentence

# --- weapons -----------------------------------------------------------------------------
_MAKE = (
    "make making makes build building construct constructing assemble assembling manufacture "
    "manufacturing create creating produce producing synthesize synthesise synthesizing cook "
    "cooking brew mix mixing prepare preparing rig craft detonate print printing"
)
_EXPLOSIVES = (
    r"(?<!bath\s)(?<!photo\s)(?<!seed\s)(?<!glitter\s)(?<!sex\s)(?<!cherry\s)(?<!flavor\s)(?<!flavour\s)"
    r"(?:pipe\s+bombs?|nail\s+bombs?|car\s+bombs?|dirty\s+bombs?|bombs?|explosives?|explosive\s+devices?|ieds?|grenades?|"
    r"molotov(?:\s+cocktails?)?|napalm|thermite|detonators?|c-?4|semtex|tnt|dynamite|nerve\s+agents?|sarin|"
    r"vx\s+gas|ricin|anthrax|mustard\s+gas|chlorine\s+gas|chemical\s+weapons?|biological\s+weapons?|bio-?weapons?|"
    r"nuclear\s+(?:weapons?|bombs?|devices?)|ghost\s+guns?|untraceable\s+(?:guns?|firearms?|weapons?)|"
    r"silencers?|suppressors?|zip\s+guns?|auto\s+sears?|poison\s+gas|toxic\s+gas)\b"
    # "bomb cake", "bomb pops", "the bomb.com": food and slang
    r"(?!\s*(?:cakes?|pops?|dot|\.com|diggity|squad|shelter|threats?|emoji|sauce|burgers?|bars?))"
)
# Between "make" and the weapon only articles, possessives and adjectives: "make a simple
# pipe bomb" is a weapon, "make my essay the bomb" is slang.
_WEAPON_GAP = (
    r"(?:\s+(?:a|an|the|some|my|our|own|your|simple|small|big|large|powerful|strong|real|working|functional|"
    r"homemade|home-made|improvised|crude|basic|deadly|lethal|dangerous|effective|cheap|few|couple|of|\d+|"
    r"untraceable|undetectable|unregistered|illegal|automatic|3d-printed|printed|fake|mini|tiny))*?\s+"
)
WEAPONS: list[Cue] = [
    cue("weapons", 1.5, _MAKE,
        rf"\b{alt(_MAKE)}{_WEAPON_GAP}{_EXPLOSIVES}"),
    cue("weapons", 1.5, _MAKE + " 3d",
        rf"\b(?:{alt(_MAKE)}|3d[\s-]?print){_WEAPON_GAP}(?<!toy\s)(?<!glue\s)(?<!water\s)(?<!nerf\s)(?<!squirt\s)(?<!spud\s)(?<!potato\s)(?<!paintball\s)(?<!airsoft\s)(?<!cap\s)(?<!rubber\s)(?<!band\s)(?:guns?|firearms?|rifles?|pistols?|handguns?|shotguns?)\b(?!\s*(?:cabinet|safe|rack|case|holster|range|show|license|licence|control|laws?|violence|shop|store|owners?))"),
    cue("weapons", 2.0, "poison contaminate",
        r"\b(?:poison|poisoning|contaminate|contaminating)\s+(?:a|the|our|their|an\s+entire|the\s+city'?s|a\s+city'?s)?\s*(?:city'?s\s+|town'?s\s+|public\s+)?(?:water\s+supply|water\s+supplies|reservoir|food\s+supply|drinking\s+water|wells?)\b"),
    cue("weapons", 1.5, "recipe recipes formula instructions blueprint blueprints schematic schematics plans",
        rf"\b(?:recipes?|formula|instructions|blueprints?|schematics?|plans)\s+(?:for|to\s+make|to\s+build|of)\s+(?:a\s+|an\s+|the\s+)?(?:homemade\s+|simple\s+|working\s+)?{_EXPLOSIVES}"),
    cue("weapons", 1.5, "explosive explosives bomb bombs",
        r"\b(?:explosives?|bombs?)\s+(?:from|using|with|out\s+of)\s+(?:household|common|kitchen|fertili[sz]er|everyday)"),
    cue("weapons", 2.5, "convert converting",
        r"\bconvert(?:ing)?\s+(?:my\s+|a\s+|an\s+|the\s+)?(?:semi-?auto\w*\s+)?(?:ar-?15|ak-?47|rifle|glock|pistol|semi-?auto\w*|gun|firearm|weapon)s?\s+(?:to|into)\s+(?:a\s+)?(?:full(?:y)?[\s-]?auto\w*|automatic|machine\s+gun)"),
    cue("weapons", 2.0, "background untraceable unregistered illegal",
        r"\b(?:without|avoid|avoiding|bypass|skip|skipping|evade|no)\s+(?:a\s+)?background\s+checks?\b|\b(?:buy|get|obtain|acquire)\s+(?:an?\s+)?(?:untraceable|unregistered|illegal)\s+(?:guns?|firearms?|weapons?|pistols?|rifles?)"),
    cue("weapons", 3.0, "kill hurt harm poison attack injure",
        r"\b(?:kill|hurt|harm|poison|attack|injure)\s+(?:as\s+many|the\s+most|lots\s+of|many|a\s+(?:lot|crowd)\s+of|large\s+numbers\s+of)\s+people\b"),
    cue("weapons", 3.0, "terrorist terror shooting bombing massacre",
        r"\b(?:plan|planning|carry\s+out|commit|execute|organi[sz]e|stage)\s+(?:a\s+|an\s+)?(?:terrorist\s+attack|terror\s+attack|mass\s+shooting|school\s+shooting|bombing|massacre|suicide\s+bombing)"),
]

# --- self-harm ----------------------------------------------------------------------------
SELF_HARM: list[Cue] = [
    cue("self_harm", 2.5, "kill hang suffocate drown shoot poison overdose",
        r"(?<!not\s)(?<!n't\s)(?<!never\s)\b(?:kill|hang|suffocate|drown|shoot|poison|overdose)\s+(?:my\s?self)\b(?!\s+(?:laughing|with\s+laughter))"),
    cue("self_harm", 1.5, "hurt harm cut burn starve",
        r"(?<!not\s)(?<!n't\s)(?<!never\s)(?<!avoid\s)\b(?:hurt|harm|cut|burn|starve)\s+(?:my\s?self)\b(?!\s+(?:a|an|some|off|loose|free|slack|short|out|in)\b)"),
    cue("self_harm", 2.0, "suicide",
        r"\b(?:commit|committing|attempt|attempting)\s+suicide\b|\bsuicide\s+(?:methods?|techniques?|plan|note)\b"),
    cue("self_harm", 2.5, "life",
        r"\b(?:end|take|ending|taking)\s+(?:my\s+own|my)\s+life\b"),
    cue("self_harm", 2.0, "die dead death",
        r"\b(?:i\s+)?(?:want|wanna|going|plan|planning|ready)\s+to\s+(?:die|be\s+dead)\b(?!\s+(?:my|your|his|her|their|the|it|this|that|them)\b)|\bpainless(?:ly)?\s+(?:way\s+to\s+)?(?:die|death|suicide)\b|\bquickest\s+way\s+to\s+die\b"),
    cue("self_harm", 1.5, "lethal fatal overdose od",
        r"\b(?:lethal|fatal)\s+dose\b|\boverdose\s+on\b|\bod\s+on\b"),
    cue("self_harm", 2.5, "pills tablets mg grams",
        r"\bhow\s+many\s+(?:\w+\s+){0,2}?(?:pills|tablets|mg|milligrams|grams)\b" + _S + r"{0,40}\b(?:die|kill|lethal|fatal|overdose|od)\b"),
    cue("self_harm", 2.5, "wrists wrist",
        r"\b(?:slit|cut)\s+(?:my\s+)?wrists?\b"),
    cue("self_harm", 1.5, "anorexia bulimia self suicide cutting eating",
        r"\b(?:promot\w*|glorif\w*|encourag\w*|romanticiz\w*|romanticis\w*)\s+(?:\w+\s+)?(?:anorexia|bulimia|self-?harm|suicide|cutting|eating\s+disorders?|starving)\b",
        window=60),
    cue("self_harm", 2.0, "anorexic pro ana starve",
        r"\bpro-?ana\b|\b(?:tips|ways)\s+to\s+(?:starve|become\s+anorexic|hide\s+(?:my\s+)?(?:eating\s+disorder|self-?harm))"),
]

# --- sexual content with minors (never acceptable, whatever the frame) ---------------------
_MINOR = (
    r"(?:child|children|kid|kids|minor|minors|underage|under-age|preteen|pre-teen|prepubescent|toddler|"
    r"little\s+(?:girl|boy)s?|young\s+(?:girl|boy)s?|schoolgirls?|schoolboys?|loli|lolis|lolicon|shota|shotacon|"
    r"teen|teens|teenager|teenagers|jailbait|(?:[1-9]|1[0-7])[\s-]?(?:years?|yrs?)[\s-]?old|(?:[1-9]|1[0-7])\s?yo|"
    r"middle\s+schoolers?|elementary\s+school(?:ers)?|grade\s+schoolers?)"
)
# Words that are sexual whatever the context, and words that also occur in health,
# education and safety talk about children (those let a protective frame count).
_SEXUAL_STRONG = r"(?:erotic|erotica|porn|porno|pornographic|nudes|lewd|nsfw|sexy|horny|aroused|seduc\w*|fetish|orgasm\w*)"
_SEXUAL_SOFT = r"(?:sex|sexual|sexually|nude|naked|explicit|intercourse|genitals?|breasts|penis|vagina|molest\w*|fondl\w*|rape|raping)"
# Anchored on the sexual words, which are rarer in ordinary prompts than "kid" or "old".
_SEXUAL_STRONG_ANCHORS = "erotic erotica porn porno pornographic nudes lewd nsfw sexy horny aroused seduce seduced seducing seduction seductive fetish orgasm orgasms"
_SEXUAL_SOFT_ANCHORS = "sex sexual sexually nude naked explicit intercourse genital genitals breasts penis vagina molest molested molesting molestation fondle fondled fondling fondles rape raping"
SEXUAL_MINORS: list[Cue] = [
    cue("sexual_minors", 3.0, "porn pornography csam cp material",
        r"\b(?:acquire|distribute|download|find|get|buy|share|produce|create|make|sell|trade|access)\s+(?:\w+\s+){0,3}?(?:child\s+porn(?:ography)?|kiddie\s+porn|csam|cp\s+(?:videos|images|links)|child\s+sexual\s+abuse\s+(?:material|images|videos))\b",
        window=80),
    cue("sexual_minors", 2.5, "groom grooming",
        r"\bgroom(?:ing)?\s+(?:a\s+|other\s+|young\s+|little\s+|the\s+)?(?:users?|children|kids|minors|teens|teenagers|child|kid|minor|girls|boys|students)\b"),
    cue("sexual_minors", 3.5, _SEXUAL_STRONG_ANCHORS,
        rf"\b{_MINOR}\b{_S}{{0,60}}\b{_SEXUAL_STRONG}\b|\b{_SEXUAL_STRONG}\b{_S}{{0,60}}\b{_MINOR}\b"),
    cue("sexual_minors", 2.5, _SEXUAL_SOFT_ANCHORS,
        rf"\b{_MINOR}\b{_S}{{0,60}}\b{_SEXUAL_SOFT}\b|\b{_SEXUAL_SOFT}\b{_S}{{0,60}}\b{_MINOR}\b"),
]

# --- hate ------------------------------------------------------------------------------------
_GROUPS = (
    r"(?:jews|jewish\s+people|muslims|christians|blacks|black\s+people|africans|asians|chinese\s+people|mexicans|"
    r"latinos|hispanics|immigrants|refugees|arabs|gays|gay\s+people|lesbians|homosexuals|trans\s+people|"
    r"transgender\s+people|women|disabled\s+people|gypsies|roma|indians|whites|white\s+people|hindus|sikhs|"
    r"catholics|migrants|foreigners)"
)
HATE: list[Cue] = [
    cue("hate", 2.5, "subhuman vermin animals parasites inferior cockroaches rats savages disease plague filth scum less genetically cancer",
        rf"\b{_GROUPS}\s+(?:are|is|were)\s+(?:\w+\s+){{0,2}}?(?:subhuman|vermin|animals|parasites|inferior|cockroaches|rats|savages|a\s+disease|a\s+plague|filth|scum|less\s+than\s+human|genetically\s+inferior|a\s+cancer)\b"),
    cue("hate", 3.0, "exterminate eliminate wipe get gas kill deport ethnically purge",
        rf"\b(?:exterminate|eliminate|wipe\s+out|get\s+rid\s+of|gas|kill\s+all|kill\s+the|deport\s+all|ethnically\s+cleanse|purge)\s+(?:all\s+|the\s+|every\s+)?{_GROUPS}\b"),
    cue("hate", 2.5, "racist sexist homophobic antisemitic anti transphobic islamophobic xenophobic bigoted hateful nazi supremacist",
        r"\b(?:write|tell|create|generate|give|make|compose|draft|come\s+up\s+with|produce|post)\s+(?:me\s+)?(?:a\s+|an\s+|some\s+|\d+\s+|few\s+|a\s+few\s+|more\s+|another\s+|the\s+best\s+|funny\s+|really\s+|very\s+)*"
        r"(?:racist|sexist|homophobic|antisemitic|anti-semitic|transphobic|islamophobic|xenophobic|bigoted|hateful|nazi|white\s+supremacist)\s+"
        r"(?:jokes?|posts?|speech|rants?|manifesto|propaganda|slogans?|content|essay|songs?|poems?|tweets?|articles?|messages?|comments?|memes?)"),
    cue("hate", 2.0, "promote promotes promoting incite incites inciting encourage encourages encouraging glorify glorifies glorifying",
        r"\b(?:promotes?|promoting|incites?|inciting|encourages?|encouraging|glorif(?:y|ies|ying))\s+(?:\w+\s+)?(?:racism|hatred|hate|racial\s+hatred|discrimination|genocide|terrorism|violence\s+against|antisemitism|white\s+supremacy|ethnic\s+cleansing)"),
    cue("hate", 2.0, "holocaust",
        r"\bholocaust\s+(?:never\s+happened|didn'?t\s+happen|did\s+not\s+happen|is\s+a\s+(?:hoax|lie|myth)|was\s+a\s+(?:hoax|lie|myth))|\bdeny(?:ing)?\s+the\s+holocaust\b"),
    cue("hate", 2.0, "why",
        rf"\bwhy\s+(?:are|is|do)\s+(?:all\s+)?{_GROUPS}\s+(?:so\s+)?(?:stupid|lazy|dumb|violent|evil|greedy|ugly|dirty|inferior|criminals|terrorists|worthless)"),
]

# --- malware and intrusion ------------------------------------------------------------------------
_CODE_VERBS = "write writing create creating code coding develop developing build building make making generate program design craft give"
_MALWARE = (
    r"(?:ransomware|keyloggers?|key\s+loggers?|trojans?|computer\s+virus(?:es)?|virus(?:es)?|worms?|botnets?|rootkits?|"
    r"spyware|stalkerware|malware|backdoors?|remote\s+access\s+trojans?|rats?|cryptominers?|crypto-?jackers?|"
    r"info-?stealers?|stealers?|password\s+stealers?|zero-?day\s+exploits?|exploits?|ddos\s+(?:tools?|scripts?|attacks?|bots?)|"
    r"phishing\s+(?:pages?|emails?|e-mails?|kits?|sites?|websites?|campaigns?|messages?|sms|texts?|links?)|"
    r"credential\s+harvesters?|reverse\s+shells?|malicious\s+(?:code|payloads?|scripts?|macros?|software|programs?))"
    r"(?!\s*(?:scanners?|detection|detectors?|removal|protection|checkers?|definitions?|signatures?|analysis|awareness|training|simulation))"
)
MALWARE: list[Cue] = [
    cue("malware", 2.0, _CODE_VERBS,
        rf"\b{alt(_CODE_VERBS)}\s+(?:me\s+)?(?:a\s+|an\s+|some\s+|the\s+|code\s+for\s+(?:a\s+|an\s+)?)?(?:[\w+#-]+\s+){{0,3}}?{_MALWARE}\b"),
    cue("malware", 1.2, "antivirus anti av edr defender detection software virustotal",
        r"\b(?:evade|evading|bypass|bypassing|avoid|avoiding|get\s+past|undetect\w*(?:\s+by)?|without\s+being\s+detected\s+by|hide\s+from)\s+(?:the\s+|an\s+)?(?:antivirus|anti-virus|av|edr|windows\s+defender|defender|detection|security\s+software|virustotal)\b"),
    cue("malware", 1.5, "hack hacking break",
        r"\b(?:hack|hacking|break)\s+(?:in)?to\s+(?:someone'?s?|somebody'?s?|a|an|the|his|her|their|other\s+people'?s|my\s+(?:ex-?)?(?:ex|wife|husband|girlfriend|boyfriend|neighbou?r|boss|partner|friend|teacher|school|crush|roommate|coworker)(?:'s)?(?:\s+|$))\s*(?:\w+\s+)?(?:accounts?|email|phone|computer|wifi|wi-fi|network|database|server|instagram|facebook|snapchat|whatsapp|icloud|gmail|bank|systems?|website|webcam|camera|government|corporate)"),
    cue("malware", 2.0, "steal steals stealing",
        r"\bsteal(?:s|ing)?\s+(?:someone'?s\s+|people'?s\s+|their\s+|his\s+|her\s+|user\s+|users'?\s+)?(?:passwords?|credentials|credit\s+cards?|card\s+numbers|identit(?:y|ies)|personal\s+(?:data|information)|cookies|session\s+tokens?|login\s+details|bank\s+details)"),
    cue("malware", 1.5, "spy track monitor read",
        r"\b(?:spy\s+on|track|monitor|read|access)\s+(?:my\s+)?(?:wife|husband|girlfriend|boyfriend|partner|ex|someone|somebody|employee)'?s?\s+(?:phone|messages|texts|whatsapp|location|email|emails)\b"),
    cue("malware", 2.0, "ddos dos",
        r"\b(?:ddos|dos)\s+(?:attack\s+)?(?:a|the|someone'?s|my\s+\w+'?s?)\s+(?:website|server|site|network|game\s+server)"),
    cue("malware", 1.5, "crack",
        r"\bcrack\s+(?:the\s+|my\s+neighbou?r'?s\s+|someone'?s\s+|a\s+)(?:wifi|wi-fi|password|wpa2?)\b"),
]

# --- illegal drugs ---------------------------------------------------------------------------------
_DRUG_MAKE = (
    "make making makes cook cooking cooks synthesize synthesise synthesizing synthesising manufacture manufacturing "
    "produce producing extract extracting brew brewing prepare preparing refine refining create creating"
)
_DRUGS = (
    r"(?:meth|methamphetamine|crystal\s+meth|cocaine|crack(?:\s+cocaine)?|freebase|heroin|fentanyl|carfentanil|lsd|"
    r"mdma|ecstasy|dmt|ghb|ketamine|pcp|amphetamines?|mescaline|opium|bath\s+salts|roofies|rohypnol|"
    r"date\s+rape\s+drugs?|(?:illegal|street|hard)\s+drugs|drugs)"
)
_DRUG_ANCHORS = (
    "meth methamphetamine crystal cocaine crack freebase heroin fentanyl carfentanil lsd mdma ecstasy dmt ghb "
    "ketamine pcp amphetamine amphetamines mescaline opium salts roofies rohypnol rape drugs"
)
DRUGS: list[Cue] = [
    cue("drugs", 1.5, _DRUG_MAKE,
        rf"\b{alt(_DRUG_MAKE)}\s+(?:\w+\s+){{0,2}}?{_DRUGS}\b(?!\s+(?:addiction|test|tests|testing|dog|dogs|policy|laws?|awareness|epidemic|crisis|overdoses?))"),
    cue("drugs", 1.5, "buy get order purchase score find",
        rf"\b(?:buy|get|order|purchase|score|find)\s+(?:\w+\s+){{0,2}}?{_DRUGS}\s+(?:online|on\s+the\s+dark\s*web|from\s+a\s+dealer|without\s+(?:a\s+)?prescription)"),
    cue("drugs", 1.5, "oxycodone oxycontin xanax adderall percocet vicodin tramadol codeine morphine",
        r"\b(?:get|buy|obtain)\s+(?:\w+\s+){0,2}?(?:oxycodone|oxycontin|xanax|adderall|percocet|vicodin|tramadol|codeine|morphine)\s+without\s+(?:a\s+)?prescription"),
    cue("drugs", 2.0, "smuggle smuggling traffic trafficking sneak sneaking conceal concealing",
        rf"\b(?:smuggle|smuggling|traffic|trafficking|sneak|sneaking|conceal|concealing)\s+(?:\w+\s+){{0,2}}?{_DRUGS}\b"),
    cue("drugs", 1.5, "sell selling deal dealing distribute",
        rf"\b(?:sell|selling|deal|dealing|distribute)\s+(?:\w+\s+){{0,1}}?{_DRUGS}\b"),
]

# --- violence against people --------------------------------------------------------------------
_VICTIMS = (
    r"(?:someone|somebody|a\s+person|people|him|her|them|my\s+(?:wife|husband|boss|neighbou?r|teacher|mom|mother|dad|"
    r"father|brother|sister|girlfriend|boyfriend|ex|coworker|co-worker|classmate|roommate|landlord|partner|baby|child|son|daughter|"
    r"family|friend|stepdad|stepmom|stepfather|stepmother|uncle|aunt|neighbou?r'?s\s+(?:dog|cat|kid|child|son|daughter))|a\s+(?:child|kid|man|woman|cop|police\s+officer|politician|baby)|"
    r"the\s+(?:president|senator|governor|mayor|judge|prime\s+minister))"
)
VIOLENCE: list[Cue] = [
    cue("violence", 1.5, "kill murder poison stab strangle shoot hurt harm assassinate kidnap abduct torture beat attack maim choke suffocate",
        rf"\b(?:kill|murder|poison|stab|strangle|shoot|hurt|harm|assassinate|kidnap|abduct|torture|beat\s+up|attack|maim|choke|suffocate)\s+{_VICTIMS}\b"),
    cue("violence", 2.0, "body corpse",
        r"\b(?:dispose\s+of|hide|get\s+rid\s+of|dissolve|bury)\s+(?:a|the)\s+(?:dead\s+)?(?:body|corpse)\b"),
    cue("violence", 1.5, "murder murdering killing poisoning stabbing shooting",
        r"\bget\s+away\s+with\s+(?:murder|murdering|killing|poisoning|stabbing|shooting)\b"),
    cue("violence", 3.0, "drink drinks lace spike",
        r"\b(?:spike|lace|drug)\s+(?:someone'?s|her|his|a\s+girl'?s|a|my\s+\w+'?s?)\s+(?:drink|drinks|food|coffee|tea)\b"),
    cue("violence", 1.5, "assassinate assassinating assassination",
        r"\bassassinat(?:e|ing|ion)\b"),
    cue("violence", 1.5, "harm injury damage pain",
        r"\b(?:cause|causing|inflict|inflicting|do|doing)\s+(?:\w+\s+)?(?:physical\s+|serious\s+|bodily\s+|maximum\s+)?(?:harm|injury|injuries|damage|pain)\s+to\s+(?:others|other\s+people|someone|somebody|people|a\s+person|him|her|them|passengers|civilians|children|my\s+\w+)\b",
        window=80),
    cue("violence", 1.5, "stalk stalking harass harassing dox doxx doxing doxxing cyberbully bully blackmail extort threaten intimidate",
        r"\b(?:stalk|stalking|harass|harassing|dox|doxx|doxing|doxxing|cyberbully|bully|blackmail|extort|threaten|intimidate)\s+(?:and\s+\w+\s+)?(?:someone|somebody|a\s+person|people|him|her|them|my\s+(?:ex|coworker|classmate|neighbou?r|boss|teacher)|a\s+(?:woman|girl|man|coworker|classmate|journalist|celebrity))\b"),
    cue("violence", 1.5, "sabotage sabotaging",
        r"\bsabotag(?:e|ing)\s+(?:a|the|someone'?s|my\s+\w+'?s?)?\s*(?:\w+\s+){0,2}?(?:transportation|transport|power|electrical|water|railway|rail|train|plane|aircraft|grid|pipeline|car|brakes|vehicle|system|network|plant)\b"),
    cue("violence", 1.5, "untraceable undetectable",
        r"\b(?:untraceable|undetectable)\s+poisons?\b"),
]

# --- other crime --------------------------------------------------------------------------------
CRIME: list[Cue] = [
    cue("crime", 1.5, "counterfeit fake forge forging forged",
        r"\b(?:counterfeit|fake|forge|forging|forged)\s+(?:\w+\s+){0,2}?(?:money|bills|currency|banknotes|dollars|euros|passports?|ids?|id\s+cards?|driver'?s\s+licen[sc]es?|documents|checks|cheques|signatures?|prescriptions?|diplomas?|goods|products|designer\s+\w+)\b"),
    cue("crime", 1.5, "launder laundering",
        r"\blaunder(?:ing)?\s+(?:\w+\s+)?(?:money|cash|funds|proceeds)\b|\bmoney\s+laundering\s+(?:scheme|operation|network)"),
    cue("crime", 1.5, "commit committing",
        r"\b(?:commit|committing)\s+(?:\w+\s+)?(?:fraud|identity\s+theft|insurance\s+fraud|credit\s+card\s+fraud|wire\s+fraud|tax\s+fraud|arson|burglary|robbery)\b"),
    cue("crime", 1.5, "evade evading",
        r"\bevad(?:e|ing)\s+(?:\w+\s+)?taxes\b"),
    cue("crime", 1.5, "shoplift shoplifting steal",
        r"\bshoplift(?:ing)?\b|\bsteal\s+(?:from\s+(?:a|the|my)\s+(?:store|shop|supermarket|walmart|target|charity|company|employer|bank|church|cash\s+register|register)|(?:a|someone'?s)\s+(?:car|bike|package|wallet))"),
    cue("crime", 1.5, "break breaking",
        r"\b(?:break|breaking)\s+into\s+(?:a|someone'?s|my\s+neighbou?r'?s|the|his|her)\s+(?:house|home|car|apartment|store|shop|office)\b"),
    cue("crime", 1.5, "hotwire",
        r"\bhotwire\s+(?:a|someone'?s|the)\s+car\b"),
    cue("crime", 1.5, "scam defraud con swindle trick",
        r"\b(?:scam|defraud|con|swindle|trick)\s+(?:the\s+)?(?:elderly|old\s+people|vulnerable\s+people|people|someone|grandparents|seniors|investors|customers)\b"),
    cue("crime", 1.5, "insider manipulate pump",
        r"\binsider\s+trading\b|\bmanipulate\s+(?:the\s+)?stock\s+(?:price|prices|market)\b|\bpump\s+and\s+dump\b"),
    cue("crime", 1.5, "hijack hijacking hack take",
        r"\b(?:hijack|hijacking|hack|take\s+control\s+of)\s+(?:a|an|the|someone'?s)\s+(?:[\w-]+\s+){0,2}?(?:car|vehicle|plane|aircraft|drone|truck|bus|train|ship)\b"),
    cue("crime", 1.5, "stolen",
        r"\b(?:buy|sell|get|obtain|use)\s+(?:\w+\s+){0,2}?stolen\s+(?:credit\s+cards?|card\s+numbers?|credit\s+card\s+numbers?|identities|accounts|data|passwords|credentials|goods)\b",
        window=60),
    cue("crime", 1.5, "web darkweb darknet",
        r"\b(?:buy|sell|order|purchase|get)\b" + _S + r"{0,40}\b(?:dark\s*web|darknet|darkweb)\b",
        window=60),
    cue("crime", 1.5, "identity",
        r"\bidentity\s+theft\b"),
]

# --- modifiers -----------------------------------------------------------------------------------------
MODIFIERS: list[Cue] = [
    cue("_request", 1.0, "how",
        r"\bhow\s+(?:to|do\s+i|do\s+you|can\s+i|could\s+i|would\s+i|should\s+i|can\s+someone|do\s+people|does\s+one|can\s+one|would\s+one|might\s+one|can\s+we|do\s+we|would\s+you)\b"),
    cue("_request", 1.0, "what",
        r"\bwhat(?:'s|\s+is|\s+are)\s+the\s+(?:best|easiest|fastest|simplest|cheapest|quickest|most\s+effective|safest|surest)\s+(?:way|ways|method|methods)\s+(?:for\s+(?:me|someone|a\s+person|us)\s+)?to\b"),
    cue("_request", 1.0, "ways steps instructions instruction guide tutorial recipe",
        r"\b(?:ways|steps)\s+to\b|\binstructions?\s+(?:for|on|to)\b|\b(?:guide|tutorial)\s+(?:to|for|on)\b|\brecipe\s+for\b"),
    cue("_request", 1.0, "teach tell show explain help",
        r"\b(?:teach|tell|show)\s+me\b|\bexplain\s+(?:to\s+me\s+)?how\b|\bhelp\s+me\b"),
    cue("_request", 1.0, "i",
        r"\bi\s+(?:want|need|plan|am\s+going|'m\s+going|wanna)\s+to\b"),
    cue("_request", 1.0, "can could",
        r"\b(?:can|could)\s+(?:i|we|someone|you\s+tell\s+me)\b"),
    cue("_request", 1.0, "give write provide step detailed in",
        r"\bgive\s+me\b|\bwrite\s+(?:me\s+)?(?:a|an|some)\b|\bprovide\s+(?:me\s+)?(?:with\s+)?(?:a|an|detailed|step|the|instructions)\b|\bstep[\s-]by[\s-]step\b|\bin\s+detail\b|\bdetailed\b"),
    cue("_request", 1.0,
        "make build write create generate give tell explain teach show list describe provide design develop draft compose produce synthesize synthesise outline please can could",
        r"(?:^|(?<=[.!?\n:]))\W*(?:please\s+|can\s+you\s+|could\s+you\s+)?(?:make|build|write|create|generate|give|tell|explain|teach|show|list|describe|provide|design|develop|draft|compose|produce|synthesi[sz]e|outline)\b",
        window=40),
    cue("_detail", 0.8,
        "exact precise ingredients materials precursors precursor home homemade garage kitchen basement quantities measurements",
        r"\b(?:exact|precise)\s+(?:amounts|quantities|measurements|ratios|steps|temperatures|doses|dosage)\b|\bingredients\b|\bmaterials\s+(?:needed|list|required)\b"
        r"|\bprecursors?\b|\bat\s+home\b|\bhomemade\b|\bin\s+my\s+(?:garage|kitchen|basement)\b"),
    cue("_evasion", 1.0, "caught detected knowing noticing trace traced",
        r"\bwithout\s+(?:getting\s+caught|being\s+(?:caught|detected|traced|noticed)|anyone\s+(?:knowing|noticing|finding\s+out)|leaving\s+(?:a\s+|any\s+)?(?:trace|evidence))|\bso\s+(?:that\s+)?(?:i|we)\s+(?:don'?t|won'?t)\s+get\s+caught"),
    cue("_protect", 1.2,
        "prevent prevention protect protection defend defense defence detect detection recognize recognise identify spot awareness talk my asking puberty consent appropriate signs symptoms treatment recover recovery report history historical statistics dangers risks effects consequences penalties laws illegal why educational education safety safely",
        r"\b(?:prevent|prevention|protect|protection|defend|defen[cs]e|detect|detection|recogni[sz]e|identify|spot|awareness|talk\s+to\s+(?:my|our|your)\s+\w+\s+about|"
        r"my\s+(?:son|daughter|child|kid|kids|children|teen|teenager|toddler|baby|students?)\s+(?:is|are|was|has|have|keeps|asked|asks)|(?:is|are)\s+asking\s+(?:me\s+)?about|puberty|consent|age-appropriate|warning\s+signs|signs\s+of|symptoms|treatment|recover|recovery|report|reporting|history\s+of|historical|statistics|dangers\s+of|risks\s+of|effects\s+of|legal\s+consequences|penalties|laws\s+(?:on|against|about)|why\s+is\s+it\s+illegal|(?:sex\s+)?education(?:al)?|stay\s+safe)\b"),
]

# --- German and Korean: the core acts, with the request frame folded in ------------------------------
GERMAN: list[Cue] = [
    cue("weapons", 2.5, "bombe bomben sprengstoff sprengsatz rohrbombe molotowcocktail brandbombe",
        r"\b(?:bauen|baue|herstellen|stelle|basteln|bastle|machen|mache|anleitung|rezept)\b" + _S + r"{0,40}\b(?:bomben?|sprengstoff|sprengsatz|rohrbomben?|molotowcocktails?|brandbomben?)\b"
        r"|\b(?:bomben?|sprengstoff|sprengsatz|rohrbomben?|molotowcocktails?|brandbomben?)\b" + _S + r"{0,40}\b(?:bauen|baue|herstellen|basteln|bastle|machen|mache)\b"),
    cue("self_harm", 2.5, "umbringen töten erhängen leben pulsadern suizid selbstmord",
        r"\b(?:mich|mir)\s+(?:\w+\s+){0,2}?(?:umbringen|töten|erhängen|das\s+leben\s+nehmen|die\s+pulsadern)\b|\b(?:suizid|selbstmord)\b" + _S + r"{0,30}\b(?:begehen|methoden?|schmerzlos|wie)\b"),
    cue("drugs", 2.5, "meth crystal kokain heroin fentanyl lsd mdma crack drogen",
        r"\b(?:meth|crystal|kokain|heroin|fentanyl|lsd|mdma|crack|drogen)\b" + _S + r"{0,20}\b(?:herstellen|kochen|synthetisieren|produzieren)\b"
        r"|\b(?:stelle|stellt|koche|kocht|synthetisiere|produziere|mache|macht)\b" + _S + r"{0,30}\b(?:meth|crystal|kokain|heroin|fentanyl|lsd|mdma|crack|drogen)\b"),
    cue("malware", 2.5, "ransomware keylogger trojaner virus schadsoftware malware",
        r"\b(?:schreibe|schreib|programmiere|erstelle|entwickle|baue|code)\b" + _S + r"{0,30}\b(?:ransomware|keylogger|trojaner|virus|schadsoftware|malware)\b"),
    cue("sexual_minors", 3.0, "kind kinder kindern minderjährige minderjährigen minderjährig jährige jährigen jähriger mädchen",
        r"\b(?:kind|kinder|kindern|minderjährig\w*|(?:[1-9]|1[0-7])[\s-]?jährige[nr]?|kleine[ns]?\s+mädchen)\b" + _S + r"{0,60}\b(?:sex\w*|nackt\w*|porno\w*|erotisch\w*)\b"
        r"|\b(?:sex\w*|nackt\w*|porno\w*|erotisch\w*)\b" + _S + r"{0,60}\b(?:kind|kinder|kindern|minderjährig\w*|(?:[1-9]|1[0-7])[\s-]?jährige[nr]?)\b"),
]

_KO = r"[^.!?\n]"
KOREAN: list[Cue] = [
    cue("weapons", 2.5, "폭탄 폭발물 화염병 사제총",
        r"(?:폭탄|폭발물|화염병|사제총)" + _KO + r"{0,8}(?:만드는|만들|제조|제작)", substr=True),
    cue("drugs", 2.5, "필로폰 마약 코카인 헤로인 펜타닐 메스암페타민 엑스터시",
        r"(?:필로폰|마약|코카인|헤로인|펜타닐|메스암페타민|엑스터시)" + _KO + r"{0,8}(?:만드는|만들|제조|합성)", substr=True),
    cue("self_harm", 2.5, "자살 죽는",
        r"(?:자살|죽는)\s?(?:하는\s?)?(?:방법|법)", substr=True),
    cue("self_harm", 2.0, "죽고 싶",
        r"죽고\s?싶", substr=True),
    cue("malware", 2.5, "랜섬웨어 키로거 악성코드 바이러스 트로이목마 해킹",
        r"(?:랜섬웨어|키로거|악성\s?코드|트로이\s?목마)" + _KO + r"{0,8}(?:만들|제작|작성|코드|짜)|(?:계정|비밀번호|와이파이)" + _KO + r"{0,6}해킹", substr=True),
    cue("sexual_minors", 3.0, "아동 미성년 초등학생 중학생 어린이",
        r"(?:아동|미성년|초등학생|중학생|어린이)" + _KO + r"{0,20}(?:성적|야한|음란|누드|섹스|성관계|나체)", substr=True),
]

CATEGORY_CUES: list[Cue] = WEAPONS + SELF_HARM + SEXUAL_MINORS + HATE + MALWARE + DRUGS + VIOLENCE + CRIME + GERMAN + KOREAN
ALL_CUES: list[Cue] = CATEGORY_CUES + MODIFIERS
