// Page texts, French first (residents read French), English for visitors and peers. Plain French: short sentences,
// the words a resident uses ("mot de passe", "courriel"), no jargon.
export const LANGS = ['fr', 'en'] as const;
export type Lang = (typeof LANGS)[number];

const fr = {
  'site.title': 'Services en ligne de l’association',
  'site.skip': 'Aller au contenu',
  'nav.home': 'Accueil', 'nav.signup': 'S’inscrire', 'nav.login': 'Se connecter', 'nav.me': 'Mes services',
  'nav.mediator': 'Inscrire une personne', 'nav.admin': 'Administration', 'nav.logout': 'Se déconnecter', 'nav.lang': 'English',
  'home.intro': 'L’association héberge des services éthiques pour les habitantes et habitants : vos données restent ici, chez nous, et ne servent à rien d’autre.',
  'home.services': 'Les services proposés',
  'home.open': 'Inscription ouverte', 'home.closed': 'Sur demande à l’association',
  'home.cta': 'Créer mon compte',
  'terms.title': 'Conditions d’utilisation et charte', 'terms.version': 'Version',
  'signup.title': 'Créer mon compte',
  'signup.intro': 'Remplissez ce formulaire. Les champs marqués « obligatoire » doivent être remplis.',
  'signup.name': 'Votre nom et prénom', 'signup.email': 'Votre adresse de courriel',
  'signup.email.help': 'Facultatif. Si vous n’en avez pas, choisissez le service « Courriel » : ce sera votre première adresse.',
  'signup.services': 'Les services que vous voulez',
  'signup.password': 'Choisissez un mot de passe', 'signup.password.help': 'Au moins 10 caractères. Une phrase facile à retenir fonctionne bien.',
  'signup.password2': 'Écrivez-le une deuxième fois',
  'signup.terms': 'J’ai lu et j’accepte les conditions d’utilisation et la charte (version {version})',
  'signup.terms.link': 'Lire les conditions',
  'signup.submit': 'Envoyer ma demande',
  'signup.done.title': 'Votre demande est enregistrée',
  'signup.done.pending': 'Une personne de l’association va la vérifier. Ensuite, vos services seront ouverts.',
  'signup.done.approved': 'Vos services sont ouverts.',
  'signup.done.login': 'Votre identifiant est : {login}. Connectez-vous avec le mot de passe que vous avez choisi.',
  'required': 'obligatoire',
  'login.title': 'Se connecter', 'login.login': 'Identifiant', 'login.password': 'Mot de passe', 'login.submit': 'Se connecter',
  'login.oidc': 'Se connecter avec : {label}', 'login.or': 'ou avec un identifiant de l’association',
  'me.title': 'Mes services', 'me.hello': 'Bonjour {name}.', 'me.login': 'Votre identifiant : {login}',
  'me.pending': 'Votre demande attend la vérification de l’association. Revenez un peu plus tard.',
  'me.none': 'Vous n’avez pas encore de compte dans nos services.',
  'me.state.active': 'Ouvert', 'me.state.suspended': 'Suspendu', 'me.state.pending': 'En préparation', 'me.state.deleting': 'En cours de suppression', 'me.state.failed': 'En erreur',
  'me.energy': 'Énergie de ce compte sur 30 jours : environ {wh} Wh, soit {g} g d’équivalent CO2 (estimation).',
  'me.export': 'Télécharger mes données', 'me.delete': 'Supprimer ce compte',
  'me.delete.confirm': 'Je comprends que mes données dans ce service seront effacées',
  'me.password.title': 'Changer mon mot de passe', 'me.password.help': 'Le nouveau mot de passe vaut pour ce site et pour tous vos services.',
  'me.password.current': 'Mot de passe actuel', 'me.password.new': 'Nouveau mot de passe', 'me.password.new2': 'Écrivez-le une deuxième fois',
  'me.password.submit': 'Changer le mot de passe', 'me.password.done': 'Votre mot de passe est changé partout.',
  'me.password.partial': 'Votre mot de passe est changé, sauf pour : {services}. Il sera réessayé à votre prochaine connexion.',
  'me.password.first': 'Pour votre sécurité, choisissez maintenant votre propre mot de passe.',
  'me.deleted': 'Le compte est supprimé.',
  'mediator.title': 'Inscrire une personne',
  'mediator.intro': 'Vous aidez une personne à s’inscrire. Lisez-lui les conditions, puis cochez la case de son accord. Une feuille à imprimer avec ses identifiants sera produite.',
  'mediator.consent': 'La personne a lu (ou on lui a lu) les conditions et la charte (version {version}) et elle les accepte',
  'mediator.submit': 'Inscrire et imprimer la feuille',
  'sheet.title': 'Vos services en ligne', 'sheet.for': 'Pour : {name}', 'sheet.login': 'Votre identifiant', 'sheet.password': 'Votre premier mot de passe',
  'sheet.change': 'À la première connexion, il faudra choisir votre propre mot de passe.',
  'sheet.where': 'Où vous connecter : {url}', 'sheet.by': 'Inscription faite le {date} avec {mediator}.', 'sheet.print': 'Imprimer',
  'sheet.keep': 'Gardez cette feuille en lieu sûr. Personne de l’association ne vous demandera jamais votre mot de passe.',
  'admin.title': 'Administration', 'admin.signups': 'Demandes d’inscription en attente', 'admin.signups.none': 'Aucune demande en attente.',
  'admin.approve': 'Accepter', 'admin.reject': 'Refuser', 'admin.accounts': 'Comptes', 'admin.failed': 'Demandes en erreur',
  'col.name': 'Nom', 'col.login': 'Identifiant', 'col.email': 'Courriel', 'col.services': 'Services', 'col.date': 'Date', 'col.channel': 'Par',
  'col.actions': 'Actions', 'col.instance': 'Instance', 'col.state': 'État', 'col.quota': 'Quota (Mo)', 'col.error': 'Erreur',
  'channel.self': 'la personne', 'channel.mediator': 'médiation ({mediator})',
  'error.title': 'Un problème est survenu', 'error.back': 'Revenir à l’accueil',
  'err.CATTERY_ERR_LOGIN_FAILED': 'Identifiant ou mot de passe incorrect.',
  'err.CATTERY_ERR_THROTTLED': 'Trop d’essais. Réessayez dans {detail} secondes.',
  'err.CATTERY_ERR_CSRF': 'Le formulaire a expiré. Rechargez la page et recommencez.',
  'err.CATTERY_ERR_FORBIDDEN': 'Vous n’avez pas accès à cette page.',
  'err.CATTERY_ERR_NOT_FOUND': 'Cette page n’existe pas.',
  'err.CATTERY_ERR_TOO_LARGE': 'Le formulaire envoyé est trop grand.',
  'err.CATTERY_ERR_OIDC': 'La connexion n’a pas abouti. Recommencez depuis la page de connexion.',
  'err.CATTERY_ERR_OIDC_UNAVAILABLE': 'Le service de connexion ne répond pas. Réessayez plus tard.',
  'err.internal': 'Une erreur est survenue de notre côté (référence {id}).',
  'err.generic': 'Cette action n’a pas abouti : {detail}',
  'err.rate': 'Trop de demandes depuis cette adresse. Attendez un peu avant de réessayer.',
  'err.name': 'Le nom ne peut contenir que des lettres, des espaces, des apostrophes et des tirets (80 au plus).',
  'err.email': 'Cette adresse de courriel n’est pas valable.',
  'err.services': 'Choisissez au moins un service.',
  'err.password': 'Le mot de passe doit faire entre 10 et 128 caractères.',
  'err.password2': 'Les deux mots de passe ne sont pas les mêmes.',
  'err.terms': 'Il faut accepter les conditions pour continuer.',
  'err.current': 'Le mot de passe actuel n’est pas le bon.',
  'err.form': 'Le formulaire contient une erreur. Vérifiez les champs.',
  'form.errors': 'Le formulaire contient des erreurs :',
} as const;

export type MessageKey = keyof typeof fr;

const en: Record<MessageKey, string> = {
  'site.title': 'The association’s online services', 'site.skip': 'Skip to content',
  'nav.home': 'Home', 'nav.signup': 'Sign up', 'nav.login': 'Sign in', 'nav.me': 'My services',
  'nav.mediator': 'Sign someone up', 'nav.admin': 'Administration', 'nav.logout': 'Sign out', 'nav.lang': 'Français',
  'home.intro': 'The association hosts ethical services for residents: your data stays here, with us, and is used for nothing else.',
  'home.services': 'Services offered', 'home.open': 'Open sign-up', 'home.closed': 'Ask the association', 'home.cta': 'Create my account',
  'terms.title': 'Terms of use and charter', 'terms.version': 'Version',
  'signup.title': 'Create my account', 'signup.intro': 'Fill in this form. Fields marked “required” must be filled in.',
  'signup.name': 'Your full name', 'signup.email': 'Your email address',
  'signup.email.help': 'Optional. If you have none, choose the “Mail” service: it will be your first address.',
  'signup.services': 'The services you want',
  'signup.password': 'Choose a password', 'signup.password.help': 'At least 10 characters. An easy-to-remember sentence works well.',
  'signup.password2': 'Type it a second time',
  'signup.terms': 'I have read and accept the terms of use and the charter (version {version})', 'signup.terms.link': 'Read the terms',
  'signup.submit': 'Send my request',
  'signup.done.title': 'Your request is recorded', 'signup.done.pending': 'Someone from the association will check it. Then your services will open.',
  'signup.done.approved': 'Your services are open.', 'signup.done.login': 'Your login is: {login}. Sign in with the password you chose.',
  'required': 'required',
  'login.title': 'Sign in', 'login.login': 'Login', 'login.password': 'Password', 'login.submit': 'Sign in',
  'login.oidc': 'Sign in with: {label}', 'login.or': 'or with an association login',
  'me.title': 'My services', 'me.hello': 'Hello {name}.', 'me.login': 'Your login: {login}',
  'me.pending': 'Your request is waiting for the association to check it. Come back a little later.',
  'me.none': 'You have no account in our services yet.',
  'me.state.active': 'Open', 'me.state.suspended': 'Suspended', 'me.state.pending': 'Being prepared', 'me.state.deleting': 'Being deleted', 'me.state.failed': 'Failed',
  'me.energy': 'Energy of this account over 30 days: about {wh} Wh, that is {g} g CO2e (an estimate).', 'me.export': 'Download my data', 'me.delete': 'Delete this account', 'me.delete.confirm': 'I understand that my data in this service will be erased',
  'me.password.title': 'Change my password', 'me.password.help': 'The new password is for this site and for all your services.',
  'me.password.current': 'Current password', 'me.password.new': 'New password', 'me.password.new2': 'Type it a second time',
  'me.password.submit': 'Change the password', 'me.password.done': 'Your password is changed everywhere.',
  'me.password.partial': 'Your password is changed, except for: {services}. It will be tried again at your next sign-in.',
  'me.password.first': 'For your safety, choose your own password now.', 'me.deleted': 'The account is deleted.',
  'mediator.title': 'Sign someone up',
  'mediator.intro': 'You are helping someone sign up. Read them the terms, then tick the consent box. A sheet with their logins will be printed.',
  'mediator.consent': 'The person has read (or been read) the terms and charter (version {version}) and accepts them',
  'mediator.submit': 'Sign up and print the sheet',
  'sheet.title': 'Your online services', 'sheet.for': 'For: {name}', 'sheet.login': 'Your login', 'sheet.password': 'Your first password',
  'sheet.change': 'At the first sign-in you will choose your own password.', 'sheet.where': 'Where to sign in: {url}',
  'sheet.by': 'Signed up on {date} with {mediator}.', 'sheet.print': 'Print',
  'sheet.keep': 'Keep this sheet somewhere safe. Nobody from the association will ever ask for your password.',
  'admin.title': 'Administration', 'admin.signups': 'Sign-ups waiting', 'admin.signups.none': 'No sign-up waiting.',
  'admin.approve': 'Approve', 'admin.reject': 'Reject', 'admin.accounts': 'Accounts', 'admin.failed': 'Failed sign-ups',
  'col.name': 'Name', 'col.login': 'Login', 'col.email': 'Email', 'col.services': 'Services', 'col.date': 'Date', 'col.channel': 'By',
  'col.actions': 'Actions', 'col.instance': 'Instance', 'col.state': 'State', 'col.quota': 'Quota (MB)', 'col.error': 'Error',
  'channel.self': 'the person', 'channel.mediator': 'mediator ({mediator})',
  'error.title': 'Something went wrong', 'error.back': 'Back to the home page',
  'err.CATTERY_ERR_LOGIN_FAILED': 'Wrong login or password.', 'err.CATTERY_ERR_THROTTLED': 'Too many attempts. Try again in {detail} seconds.',
  'err.CATTERY_ERR_CSRF': 'The form has expired. Reload the page and try again.', 'err.CATTERY_ERR_FORBIDDEN': 'You do not have access to this page.',
  'err.CATTERY_ERR_NOT_FOUND': 'This page does not exist.', 'err.CATTERY_ERR_TOO_LARGE': 'The form sent is too large.',
  'err.CATTERY_ERR_OIDC': 'Signing in did not complete. Start again from the sign-in page.',
  'err.CATTERY_ERR_OIDC_UNAVAILABLE': 'The sign-in service does not answer. Try again later.',
  'err.internal': 'Something went wrong on our side (reference {id}).', 'err.generic': 'This did not work: {detail}', 'err.rate': 'Too many requests from this address. Wait a little before trying again.',
  'err.name': 'The name may only hold letters, spaces, apostrophes and hyphens (80 at most).', 'err.email': 'This email address is not valid.',
  'err.services': 'Choose at least one service.', 'err.password': 'The password must be 10 to 128 characters long.',
  'err.password2': 'The two passwords are not the same.', 'err.terms': 'You must accept the terms to go on.',
  'err.current': 'The current password is not right.', 'err.form': 'The form has an error. Check the fields.', 'form.errors': 'The form has errors:',
};

const messages: Record<Lang, Record<MessageKey, string>> = { fr, en };

export type Translate = (key: MessageKey, vars?: Record<string, string | number>) => string;

export function translator(lang: Lang): Translate {
  return (key, vars) => {
    const text = messages[lang][key] ?? fr[key] ?? key;
    return vars ? text.replace(/\{(\w+)\}/g, (all, k: string) => (k in vars ? String(vars[k]) : all)) : text;
  };
}

export const hasMessage = (key: string): key is MessageKey => key in fr;

/** ?lang= first (the switch link), then the cookie it sets, then the browser's first known language, else French. */
export function pickLang(query: unknown, cookie: string | undefined, acceptLanguage: string | undefined): Lang {
  const q = (query as { lang?: unknown } | undefined)?.lang;
  if (q === 'fr' || q === 'en') return q;
  if (cookie === 'fr' || cookie === 'en') return cookie;
  for (const part of (acceptLanguage ?? '').split(',')) {
    const tag = part.trim().slice(0, 2).toLowerCase();
    if (tag === 'fr' || tag === 'en') return tag;
  }
  return 'fr';
}
